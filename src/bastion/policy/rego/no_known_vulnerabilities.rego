# No Python package in the verified SBOM is affected by an advisory of the offline OSV snapshot at or above
# a severity. Matching versions against OSV ranges is done by Bastion; this rule decides.
# params: severity (default "low": any advisory fails), ignore (advisory ids)
package bastion.rules.no_known_vulnerabilities

import rego.v1

params := object.get(data.bastion.params, "no_known_vulnerabilities", {})

rank := {"low": 1, "medium": 2, "high": 3, "critical": 4}

threshold := rank[object.get(params, "severity", "low")]

ignored := {i | some i in object.get(params, "ignore", [])}

deny contains "no verified SBOM lists the Python packages of this artifact" if {
	object.get(input.evidence, ["sbom", "packages"], null) == null
}

snapshot_recorded if is_string(input.advisories.digest)

deny contains "no offline advisory snapshot was available (bastion advisories import)" if not snapshot_recorded

deny contains sprintf("%v %v: %v (%v) %v", [v.package, v.version, v.id, v.severity, v.summary]) if {
	some v in input.advisories.matches
	rank[v.severity] >= threshold
	not v.id in ignored
}

allow if {
	object.get(input.evidence, ["sbom", "packages"], null) != null
	snapshot_recorded
	count(deny) == 0
}

remediation := "Upgrade the affected packages to a fixed version, refresh the snapshot, re-attest the SBOM."
