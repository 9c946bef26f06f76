-- Which of the given label values a PromQL regex matcher selects. ClickHouse's match() is RE2, the
-- engine Prometheus uses, and runs in linear time (no catastrophic backtracking on hostile regexes).
SELECT v
FROM (SELECT arrayJoin({values:Array(String)}) AS v)
WHERE match(v, {pattern:String})
