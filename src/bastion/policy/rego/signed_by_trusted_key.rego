# Every attestation is signed by a key in the trust file that is usable now; optionally only named signers.
# params: signers (key names or key-id prefixes; empty = any trusted key), allow_retired (default true)
package bastion.rules.signed_by_trusted_key

import rego.v1

params := object.get(data.bastion.params, "signed_by_trusted_key", {})

trust_causes := {"unknown-signer", "bad-signature", "key-disabled", "key-expired", "out-of-scope", "wrong-signer"}

deny contains sprintf("%v: %v", [p.cause, p.detail]) if {
	some p in input.verification.problems
	p.cause in trust_causes
}

deny contains "no attestation signed by a trusted key was found" if count(input.signers) == 0

deny contains sprintf("signer %v (%v) is not one of the allowed signers %v", [s.name, s.short_id, params.signers]) if {
	count(object.get(params, "signers", [])) > 0
	some s in input.signers
	not allowed_signer(s)
}

deny contains sprintf("signer %v (%v) is retired and retired keys are not accepted", [s.name, s.short_id]) if {
	object.get(params, "allow_retired", true) == false
	some s in input.signers
	s.status == "retired"
}

allowed_signer(s) if s.name in params.signers

allowed_signer(s) if {
	some wanted in params.signers
	count(wanted) >= 8
	startswith(s.key_id, lower(wanted))
}

allow if {
	count(input.signers) > 0
	count(deny) == 0
}

remediation := "Sign with a key in the trust file (bastion keys generate / import-public) and one the policy names."
