# Every Python package in the verified SBOM is on the approved list (and none is on the denied list).
# params: approved (names), denied (names). Names are PEP 503-normalised by Bastion before evaluation.
# Set algebra over objects keeps this fast on SBOMs with thousands of components.
package bastion.rules.approved_packages

import rego.v1

params := object.get(data.bastion.params, "approved_packages", {})

packages := object.get(input.evidence, ["sbom", "packages"], null)

deny contains "no verified SBOM lists the Python packages of this artifact" if packages == null

unapproved := object.keys(packages) - object.keys(object.get(params, "approved", {}))

denied := object.keys(packages) & object.keys(object.get(params, "denied", {}))

deny contains sprintf("package %v %v is not on the approved list", [n, packages[n]]) if {
	count(object.get(params, "approved", {})) > 0
	some n in unapproved
}

deny contains sprintf("package %v %v is denied", [n, packages[n]]) if some n in denied

allow if {
	packages != null
	count(deny) == 0
}

remediation := "Remove the package or get it reviewed and added to the approved list."
