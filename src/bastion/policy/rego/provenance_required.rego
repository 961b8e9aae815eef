# A verified provenance attestation (SLSA v1) exists for the artifact in the listed environments;
# optionally its build must state it ran without network access.
# params: environments (default ["prod"]), require_isolated (default false)
package bastion.rules.provenance_required

import rego.v1

params := object.get(data.bastion.params, "provenance_required", {})

applies if input.environment in object.get(params, "environments", ["prod"])

provenance := object.get(input.evidence, "provenance", [])

deny contains sprintf("no verified provenance attestation for %v in %v", [input.subject.name, input.environment]) if {
	applies
	count(provenance) == 0
}

deny contains sprintf("the build by %v does not state it ran isolated (network: none)", [p.builder]) if {
	applies
	object.get(params, "require_isolated", false)
	some p in provenance
	p.isolated != true
}

allow if not applies

allow if {
	applies
	count(provenance) > 0
	count(deny) == 0
}

remediation := "Train through an isolated run that emits signed SLSA provenance, and attest it."
