-- label_replace(): which of the source label's values match the anchored RE2 {pattern}, and each
-- one's replacement ({replacement} in replaceRegexpOne's syntax: \1 for a group). Regexes run in
-- ClickHouse's RE2, never Python's backtracking engine.
SELECT v, match(v, {pattern:String}), replaceRegexpOne(v, {pattern:String}, {replacement:String})
FROM (SELECT arrayJoin({values:Array(String)}) AS v)
