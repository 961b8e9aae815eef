# The model's licence (and each dataset's, when stated) is on the allowlist. Read from the verified
# ML-BOM, or from the signed model card when there is no BOM. Matching is case-insensitive.
# params: allowed (default ["apache-2.0", "mit", "bsd-3-clause"]), require_dataset_licenses (default false)
package bastion.rules.license_allowlist

import rego.v1

params := object.get(data.bastion.params, "license_allowlist", {})

allowed := {lower(l) | some l in object.get(params, "allowed", ["apache-2.0", "mit", "bsd-3-clause"])}

licenses := object.get(input.evidence, ["model", "licenses"], [])

deny contains "no verified ML-BOM or signed model card states the model's licence" if count(licenses) == 0

deny contains sprintf("the model's licence %v is not on the allowlist %v", [l, sort(allowed)]) if {
	some l in licenses
	not lower(l) in allowed
}

deny contains sprintf("dataset %v has licence %v, not on the allowlist", [d.name, l]) if {
	some d in object.get(input.evidence, ["model", "datasets"], [])
	some l in d.licenses
	not lower(l) in allowed
}

deny contains sprintf("dataset %v states no licence", [d.name]) if {
	object.get(params, "require_dataset_licenses", false)
	some d in object.get(input.evidence, ["model", "datasets"], [])
	count(d.licenses) == 0
}

allow if {
	count(licenses) > 0
	count(deny) == 0
}

remediation := "Use a model whose licence is allowed, or add the licence to the policy's allowlist after review."
