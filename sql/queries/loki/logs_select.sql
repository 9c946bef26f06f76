-- Fragment: log lines of a LogQL log query; followed by loki/filter*.sql and an order fragment.
SELECT toUnixTimestamp64Nano(Timestamp), ServiceName, SeverityText, ResourceAttributes, Body
