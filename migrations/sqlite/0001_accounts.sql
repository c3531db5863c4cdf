-- Organizations (ISPs), the people in them, their sessions and the audit log.
-- Times are Unix milliseconds (UTC) so both backends store them the same way.

CREATE TABLE orgs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE users (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id                BIGINT  NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    -- stored lower-cased: sign-in is case-insensitive and names are unique
    -- across the whole portal, because the sign-in form has no org field
    username              TEXT    NOT NULL UNIQUE,
    password_hash         TEXT    NOT NULL,
    role                  TEXT    NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    must_change_password  BIGINT  NOT NULL DEFAULT 0,
    -- bumped when the password is reset or changed: sessions carry the epoch
    -- they were created under and stop working when it moves
    session_epoch         BIGINT  NOT NULL DEFAULT 0,
    created_at            BIGINT  NOT NULL
);
CREATE INDEX users_org ON users(org_id);

CREATE TABLE sessions (
    id      TEXT   PRIMARY KEY,
    data    TEXT   NOT NULL,
    expiry  BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions(expiry);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id        BIGINT  NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    actor_user_id BIGINT,
    actor         TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    detail        TEXT    NOT NULL,
    client_addr   TEXT    NOT NULL,
    at            BIGINT  NOT NULL
);
CREATE INDEX audit_log_org_id ON audit_log(org_id, id);

CREATE TABLE login_failures (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    username     TEXT    NOT NULL,
    client_addr  TEXT    NOT NULL,
    at           BIGINT  NOT NULL
);
CREATE INDEX login_failures_username ON login_failures(username, at);
CREATE INDEX login_failures_client ON login_failures(client_addr, at);

-- One row once first-run setup has happened: the primary key makes two
-- concurrent setups impossible on either backend.
CREATE TABLE portal_setup (
    id       BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    done_at  BIGINT NOT NULL
);
