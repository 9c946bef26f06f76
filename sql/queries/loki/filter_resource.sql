-- Fragment: stream matchers on resource attributes (host_name matches the key host_name or, failing
-- that, host.name). A resource's attributes are the same in all its records, so the matchers run
-- once per ResourceHash, at the first record of each in the window (the primary key finds those),
-- instead of reading and matching the Map on every row. GLOBAL: in cluster mode each set is built
-- once through the Distributed table and sent to the shards.
  AND ResourceHash GLOBAL IN (
        SELECT ResourceHash
        FROM otel_logs
        WHERE TenantId = {tenant:String}
          AND (ServiceName, ResourceHash, Timestamp) GLOBAL IN (
                  SELECT ServiceName, ResourceHash, min(Timestamp)
                  FROM otel_logs
                  WHERE TenantId = {tenant:String}
                    AND Timestamp > fromUnixTimestamp64Nano({start_ns:Int64})
                    AND Timestamp <= fromUnixTimestamp64Nano({end_ns:Int64})
                  GROUP BY ServiceName, ResourceHash)
          AND arrayAll((val, o, v) -> multiIf(o = '=', val = v, o = '!=', val != v, o = '=~', match(val, v),
                                               o = '!~', NOT match(val, v), false),
                arrayMap(k -> if(mapContains(ResourceAttributes, k), ResourceAttributes[k],
                                 ResourceAttributes[replaceAll(k, '_', '.')]), {res_k:Array(String)}),
                {res_op:Array(String)}, {res_v:Array(String)}))
