-- Fragment: a service_name="..." matcher (after loki/filter.sql). A plain equality on the primary
-- key's first column: ClickHouse reads only that service's granules, and a log query ordered by
-- time reads them in key order and stops at its LIMIT.
  AND ServiceName = {service:String}
