# The artifact on disk is byte for byte what was attested (every file of the signed manifest).
package bastion.rules.digests_match

import rego.v1

changed := {"changed", "added", "removed", "subject-mismatch"}

deny contains sprintf("%v: %v", [p.cause, p.detail]) if {
	some p in input.verification.problems
	p.cause in changed
}

deny contains "no verified manifest attestation covers this artifact" if not input.evidence.manifest

allow if {
	input.verification.status == "verified"
	input.evidence.manifest.digest
	count(deny) == 0
}

remediation := "Re-attest the artifact after an intended change (bastion attest), or restore the signed files."
