-- Stop a query whose client went away.
KILL QUERY WHERE query_id = {query_id:String} ASYNC
