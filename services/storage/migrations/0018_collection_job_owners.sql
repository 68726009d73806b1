-- Collection jobs shared by ingestion replicas (issue 18, item 16). A live/simulator collection job
-- is an entry of the Redis jobs stream read in one consumer group; the replica running it records
-- itself as ``owner`` and refreshes ``heartbeat_at`` with its claim, so GetCollectionStatus on any
-- replica reads who runs what from here. ``dedupe_key`` (the source name) is unique among running
-- jobs: N replicas autostarting (or one StartCollection racing another) write one running job per
-- source, not N. Numbered 0018 (the issue number) so it cannot collide with other areas' migrations.

ALTER TABLE collection_jobs ADD COLUMN IF NOT EXISTS owner text;
ALTER TABLE collection_jobs ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz;
ALTER TABLE collection_jobs ADD COLUMN IF NOT EXISTS dedupe_key text;
ALTER TABLE collection_jobs ADD COLUMN IF NOT EXISTS takeovers integer NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX IF NOT EXISTS collection_jobs_running_dedupe_idx
    ON collection_jobs (dedupe_key) WHERE status = 'running';
