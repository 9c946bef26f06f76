"""PromQL aggregations run whole in ClickHouse: the plans (:mod:`.plans`), the planner choosing one or
saying why Python answers (:mod:`.planner`), running it (:mod:`.executor`) and reading its rows
back as a vector (:mod:`.results`)."""
