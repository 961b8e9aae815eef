# No scan finding at or above a severity, and a scan that could decide (no unreadable parts).
# params: severity (default "high"), allow_problems (default false)
package bastion.rules.no_findings_above

import rego.v1

params := object.get(data.bastion.params, "no_findings_above", {})

rank := {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

threshold := rank[object.get(params, "severity", "high")]

deny contains "no verified scan report covers this artifact (attest it with --predicate scan)" if {
	not input.evidence.scan
}

deny contains sprintf("%v finding %v in %v: %v", [f.severity, f.rule_id, f.file, f.message]) if {
	some f in input.evidence.scan.findings
	rank[f.severity] >= threshold
}

deny contains sprintf("the scan could not decide on %v: %v", [p.file, p.message]) if {
	not object.get(params, "allow_problems", false)
	some p in input.evidence.scan.problems
}

allow if {
	input.evidence.scan
	count(deny) == 0
}

remediation := "Remove or replace the flagged files, then re-scan and re-attest (bastion gate)."
