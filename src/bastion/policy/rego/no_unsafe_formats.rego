# No model file in an unsafe serialization format (code runs when it is loaded) in the listed environments.
# params: formats (default ["pickle"]), environments (default ["prod"])
package bastion.rules.no_unsafe_formats

import rego.v1

params := object.get(data.bastion.params, "no_unsafe_formats", {})

unsafe := {f | some f in object.get(params, "formats", ["pickle"])}

applies if input.environment in object.get(params, "environments", ["prod"])

deny contains "no verified scan report lists the formats of this artifact" if {
	applies
	not input.evidence.scan
}

deny contains sprintf("%v is %v, an unsafe serialization format in %v", [s.file, s.format, input.environment]) if {
	applies
	some s in input.evidence.scan.scanned
	s.format in unsafe
}

allow if {
	not applies
}

allow if {
	applies
	input.evidence.scan
	count(deny) == 0
}

remediation := "Convert the weights to safetensors (or ONNX / GGUF) and re-attest."
