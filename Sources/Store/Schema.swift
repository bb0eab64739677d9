// The store's tables, as versioned migrations: each is applied once, in order, in its own transaction, and recorded
// in r2ec_migrations. A store whose last migration is newer than this program knows is refused (never guessed at).
//
//   items   (id, item_id UNIQUE, title, year, genres JSON array, description, metadata JSON object, created, version)
//   users   (id, user_id UNIQUE, created)
//   events  (seq: insertion order, user_ref -> users ON DELETE CASCADE, item_ref -> items, time, kind, rating,
//            idempotency_key UNIQUE, NULL for none)   index (user_ref, time, seq): "latest N events of a user"
//   store_meta (key, value): name, catalog_version
import Data

enum Dialect { case sqlite, postgres }

struct Migration {
    let version: Int
    let name: String
    let sqlite: [String]
    let postgres: [String]

    func statements(_ dialect: Dialect) -> [String] { dialect == .sqlite ? sqlite : postgres }
}

enum Schema {
    static let migrationsTable = """
        CREATE TABLE IF NOT EXISTS r2ec_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)
        """

    static let migrations: [Migration] = [
        Migration(version: 1, name: "items, users, events", sqlite: [
            """
            CREATE TABLE items (
              id INTEGER PRIMARY KEY,
              item_id TEXT NOT NULL UNIQUE,
              title TEXT NOT NULL DEFAULT '',
              year INTEGER NOT NULL DEFAULT 0,
              genres TEXT NOT NULL DEFAULT '[]',
              description TEXT NOT NULL DEFAULT '',
              metadata TEXT NOT NULL DEFAULT '{}',
              created INTEGER NOT NULL DEFAULT 0,
              version INTEGER NOT NULL DEFAULT 0)
            """,
            "CREATE INDEX items_version ON items (version)",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, user_id TEXT NOT NULL UNIQUE, created INTEGER NOT NULL DEFAULT 0)",
            """
            CREATE TABLE events (
              seq INTEGER PRIMARY KEY,
              user_ref INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
              item_ref INTEGER NOT NULL REFERENCES items (id),
              time INTEGER NOT NULL,
              kind TEXT NOT NULL,
              rating REAL NOT NULL DEFAULT 0,
              idempotency_key TEXT UNIQUE)
            """,
            "CREATE INDEX events_user_time ON events (user_ref, time, seq)",
            "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "INSERT INTO store_meta (key, value) VALUES ('name', 'store'), ('catalog_version', '0')",
        ], postgres: [
            """
            CREATE TABLE items (
              id BIGSERIAL PRIMARY KEY,
              item_id TEXT NOT NULL UNIQUE,
              title TEXT NOT NULL DEFAULT '',
              year INTEGER NOT NULL DEFAULT 0,
              genres JSON NOT NULL DEFAULT '[]',
              description TEXT NOT NULL DEFAULT '',
              metadata JSON NOT NULL DEFAULT '{}',
              created BIGINT NOT NULL DEFAULT 0,
              version BIGINT NOT NULL DEFAULT 0)
            """,
            "CREATE INDEX items_version ON items (version)",
            "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, user_id TEXT NOT NULL UNIQUE, created BIGINT NOT NULL DEFAULT 0)",
            """
            CREATE TABLE events (
              seq BIGSERIAL PRIMARY KEY,
              user_ref BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
              item_ref BIGINT NOT NULL REFERENCES items (id),
              time BIGINT NOT NULL,
              kind TEXT NOT NULL,
              rating REAL NOT NULL DEFAULT 0,
              idempotency_key TEXT UNIQUE)
            """,
            "CREATE INDEX events_user_time ON events (user_ref, time, seq)",
            "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "INSERT INTO store_meta (key, value) VALUES ('name', 'store'), ('catalog_version', '0')",
        ]),
        // Replicas sharing a PostgreSQL store cache user histories: every committed statement that records events
        // or deletes users tells the listeners which users changed (PGUserChanges.swift). NOTIFY channel
        // r2ec_users, payload "<writer's r2ec.instance> <user id>" (the instance empty for other writers, e.g.
        // psql); one notification per user and transaction. SQLite has one writer process: nothing to tell.
        Migration(version: 2, name: "user change notifications", sqlite: [], postgres: [
            """
            CREATE FUNCTION r2ec_notify_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              PERFORM pg_notify('r2ec_users', coalesce(current_setting('r2ec.instance', true), '') || ' ' || u.user_id)
                FROM users u WHERE u.id IN (SELECT DISTINCT user_ref FROM recorded);
              RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER events_notify AFTER INSERT ON events REFERENCING NEW TABLE AS recorded
              FOR EACH STATEMENT EXECUTE FUNCTION r2ec_notify_recorded()
            """,
            """
            CREATE FUNCTION r2ec_notify_erased() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              PERFORM pg_notify('r2ec_users', coalesce(current_setting('r2ec.instance', true), '') || ' ' || user_id)
                FROM erased;
              RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER users_notify AFTER DELETE ON users REFERENCING OLD TABLE AS erased
              FOR EACH STATEMENT EXECUTE FUNCTION r2ec_notify_erased()
            """,
        ]),
    ]

    static var latestVersion: Int { migrations.last!.version }

    /// The migrations still to apply on a store whose last applied one is `current`; refuses a newer store.
    static func pending(after current: Int, location: String) throws -> [Migration] {
        guard current <= latestVersion else {
            throw StoreError.unusable(
                "\(location) has schema version \(current), newer than this r2ec knows (\(latestVersion)); use a newer r2ec")
        }
        return migrations.filter { $0.version > current }
    }
}
