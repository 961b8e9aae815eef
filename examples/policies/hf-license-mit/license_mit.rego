# The seed's example: let a Hugging Face model through only if its licence is MIT.
package hf.license_mit

import rego.v1

licenses := object.get(input.evidence, ["model", "licenses"], [])

allow if {
	count(licenses) > 0
	every l in licenses { lower(l) == "mit" }
}

deny contains sprintf("licence %v is not MIT", [l]) if {
	some l in licenses
	lower(l) != "mit"
}

deny contains "no signed model card or ML-BOM states a licence" if count(licenses) == 0
