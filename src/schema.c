/*
 * schema: the database schema as numbered migrations (see store.h). pg.c applies the ones a
 * database lacks, in order, inside one transaction at start. Never edit a migration that has
 * shipped: add the next one.
 *
 * Times are Unix milliseconds (bigint), as on the wire. JSON columns are `json`, not `jsonb`,
 * so what a user sent (metadata, filter values, message data) is kept byte for byte.
 */
#include "quotecast/store.h"

const struct qc_migration qc_migrations[] = {
    {1, "initial schema",
     "CREATE TABLE rooms ("
     " name text PRIMARY KEY,"
     " owner text NOT NULL,"
     " type text NOT NULL CHECK (type IN ('public', 'private', 'protected')),"
     " status text NOT NULL DEFAULT 'active'"
     "  CHECK (status IN ('active', 'inactive', 'archived', 'closed')),"
     " password_hash text,"
     " max_members integer CHECK (max_members > 0),"
     " metadata json,"
     " created_at bigint NOT NULL,"
     " updated_at bigint NOT NULL);"
     "CREATE TABLE room_members ("
     " room text NOT NULL REFERENCES rooms (name) ON DELETE CASCADE,"
     " user_id text NOT NULL,"
     " role text NOT NULL CHECK (role IN ('owner', 'admin', 'moderator', 'member')),"
     " joined_at bigint NOT NULL,"
     " PRIMARY KEY (room, user_id));"
     "CREATE TABLE subscriptions ("
     " id text PRIMARY KEY,"
     " user_id text NOT NULL,"
     " name text,"
     " symbol text NOT NULL,"
     " fields json NOT NULL,"
     " alert_priority text CHECK (alert_priority IN ('low', 'normal', 'high', 'critical')),"
     " version integer NOT NULL DEFAULT 1,"
     " active boolean NOT NULL DEFAULT true,"
     " created_at bigint NOT NULL,"
     " updated_at bigint NOT NULL);"
     "CREATE INDEX subscriptions_user ON subscriptions (user_id);"
     /* gen: the subscription version that wrote the filter (an update replaces the rows) */
     "CREATE TABLE filter_expressions ("
     " subscription_id text NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,"
     " gen integer NOT NULL,"
     " idx integer NOT NULL,"
     " parent integer,"
     " op text NOT NULL CHECK (op IN ('and', 'or')),"
     " position integer NOT NULL,"
     " PRIMARY KEY (subscription_id, gen, idx));"
     "CREATE TABLE filter_conditions ("
     " subscription_id text NOT NULL,"
     " gen integer NOT NULL,"
     " expression_idx integer NOT NULL,"
     " position integer NOT NULL,"
     " field text NOT NULL,"
     " cmp text NOT NULL CHECK (cmp IN ('gt', 'gte', 'lt', 'lte', 'eq', 'ne',"
     "  'crosses_above', 'crosses_below')),"
     " value json NOT NULL,"
     " PRIMARY KEY (subscription_id, gen, expression_idx, position),"
     " FOREIGN KEY (subscription_id, gen, expression_idx)"
     "  REFERENCES filter_expressions (subscription_id, gen, idx) ON DELETE CASCADE);"
     "CREATE TABLE alerts ("
     " id text PRIMARY KEY,"
     " subscription_id text REFERENCES subscriptions (id) ON DELETE SET NULL,"
     " user_id text NOT NULL,"
     " symbol text NOT NULL,"
     " priority text NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'critical')),"
     " data json NOT NULL,"
     " created_at bigint NOT NULL,"
     " seq bigint,"
     " delivery text NOT NULL DEFAULT 'pending'"
     "  CHECK (delivery IN ('pending', 'delivered', 'evicted')),"
     " delivered_at bigint,"
     " acknowledged boolean NOT NULL DEFAULT false,"
     " acknowledged_at bigint);"
     "CREATE INDEX alerts_user ON alerts (user_id, created_at);"
     "CREATE TABLE offline_messages ("
     " id bigserial PRIMARY KEY,"
     " user_id text NOT NULL,"
     " event text NOT NULL,"
     " data json NOT NULL,"
     " created_at bigint NOT NULL);"
     "CREATE INDEX offline_messages_user ON offline_messages (user_id, id);"},
    /* a write repeated after the store went away mid-statement finds its row by key */
    {2, "offline message keys",
     "ALTER TABLE offline_messages ADD COLUMN key text;"
     "CREATE UNIQUE INDEX offline_messages_key ON offline_messages (key);"},
    /*
     * A room message for offline members is one row of its room's log, not a row per member:
     * a member's position follows from its user's cursor (moved when the user's last session
     * ends and when what waited was delivered) and room_members.joined_at. gseq orders
     * everything that waits offline (microseconds, strictly increasing); offline_messages
     * rows from before have none (their created_at stands in).
     */
    {3, "room offline logs",
     "CREATE TABLE room_log ("
     " gseq bigint PRIMARY KEY,"
     " room text NOT NULL REFERENCES rooms (name) ON DELETE CASCADE,"
     " event text NOT NULL,"
     " data json NOT NULL,"
     " target_role text CHECK (target_role IN ('owner', 'admin', 'moderator', 'member')),"
     " target_users json,"
     " created_at bigint NOT NULL);"
     "CREATE INDEX room_log_room ON room_log (room, gseq);"
     "CREATE TABLE offline_cursors ("
     " user_id text PRIMARY KEY,"
     " gseq bigint NOT NULL);"
     "ALTER TABLE offline_messages ADD COLUMN gseq bigint;"},
    /*
     * A created room's log (SPEC 2.9): every room event with its seq, the newest
     * rooms.history_size of them kept, and the log's epoch in its room's row, so that a
     * subscribe with since_seq and epoch reads back across a restart.
     */
    {4, "room history",
     "CREATE TABLE room_history ("
     " room text NOT NULL REFERENCES rooms (name) ON DELETE CASCADE,"
     " seq bigint NOT NULL,"
     " event text NOT NULL,"
     " data json NOT NULL,"
     " target_role text CHECK (target_role IN ('owner', 'admin', 'moderator', 'member')),"
     " target_users json,"
     " created_at bigint NOT NULL,"
     " PRIMARY KEY (room, seq));"
     "ALTER TABLE rooms ADD COLUMN log_epoch text;"},
    /*
     * Each user's inbox log (SPEC 2.9: direct messages, alerts, offline deliveries): its epoch
     * and last seq, and its entries, the newest inbox.history_size of them kept, so that a
     * client's inbox position survives a restart.
     */
    {5, "inbox logs",
     "CREATE TABLE inbox_logs ("
     " user_id text PRIMARY KEY,"
     " epoch text NOT NULL,"
     " last_seq bigint NOT NULL DEFAULT 0);"
     "CREATE TABLE inbox_history ("
     " user_id text NOT NULL,"
     " seq bigint NOT NULL,"
     " event text NOT NULL,"
     " data json NOT NULL,"
     " created_at bigint NOT NULL,"
     " PRIMARY KEY (user_id, seq));"},
    /*
     * max_hz of a persisted subscription (SPEC 2.11): updates per second at most for the
     * streams it attaches; 0 = unlimited, what every subscription made before had.
     */
    {6, "subscription max_hz",
     "ALTER TABLE subscriptions ADD COLUMN max_hz double precision NOT NULL DEFAULT 0"
     " CHECK (max_hz >= 0 AND max_hz <= 1000);"},
};

const int qc_nmigrations = sizeof(qc_migrations) / sizeof(qc_migrations[0]);
