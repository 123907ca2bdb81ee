-- Nodes that know each other (issue 16): each node registers itself and beats every few seconds
-- (src/cluster/registry.ts); a node whose heartbeat is older than three beats is shown as gone.
CREATE TABLE cluster_nodes (
  id            text PRIMARY KEY,
  address       text NOT NULL,
  version       text NOT NULL,
  started_at    timestamptz NOT NULL,
  heartbeat_at  timestamptz NOT NULL
);

-- Scheduled work that runs once cluster-wide, not once per node (src/cluster/run-once.ts): a job runs on the node
-- that takes its row, at most once per interval; the lease ends a run that its node did not finish (killed).
CREATE TABLE cluster_jobs (
  name         text PRIMARY KEY,
  holder       text,
  lease_until  timestamptz NOT NULL,
  last_run_at  timestamptz NOT NULL
);
