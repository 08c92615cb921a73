//! Checking an InfluxDB node for its role, like `influx ping` and a little more: `/ping`
//! answers and names an InfluxDB server in its headers (anything else on that port is named
//! for what it is, with its status and content type, never its whole body); the primary's
//! database and retention policy exist and can be read; a backup's database can be written,
//! or will be created by the first write. A probe changes nothing on the server.

use super::client::{Server, truncate};
use super::parse::{self, Interner, Rows};
use super::{Inner, influxql};
use dms_core::node::{ErrorKind, NodeError, Probe, Role};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

impl Inner {
    /// Remembers who answered (for error messages naming the server).
    pub(super) fn note_server(&self, s: &Server) {
        let mut g = self.server.lock().unwrap_or_else(|p| p.into_inner());
        if g.as_ref() != Some(s) {
            *g = Some(s.clone());
        }
    }

    /// The server as its last answer named it.
    pub(super) fn server(&self) -> Option<Server> {
        self.server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `GET /ping`: who answered, or an error that names what answered when it is not
    /// InfluxDB (InfluxDB answers 204 and names itself in `X-Influxdb-*` headers; 2.x Cloud
    /// answers 204 without them).
    pub(super) async fn ping(&self) -> Result<Option<Server>, NodeError> {
        let reply = self
            .call(self.client.get(self.ping_url.clone()), "ping")
            .await?;
        if reply.server.is_none() && reply.status != StatusCode::NO_CONTENT {
            return Err(self.err(
                ErrorKind::Rejected,
                format!(
                    "ping: {} answered HTTP {}: {}",
                    self.shown_url,
                    reply.status.as_u16(),
                    Self::message(&reply)
                ),
            ));
        }
        if !reply.status.is_success() {
            return Err(self.status_error(&reply, "ping"));
        }
        Ok(reply.server)
    }

    /// See [`dms_core::node::Node::probe`].
    pub(super) async fn probe(&self, role: Role) -> Result<Probe, NodeError> {
        let server = self.ping().await?;
        let (detail, note) = match role {
            Role::Primary => (self.probe_read(server.as_ref()).await?, None),
            Role::Backup => self.probe_write(server.as_ref()).await?,
        };
        Ok(Probe {
            server: server.map_or_else(
                || "InfluxDB (no version header)".to_string(),
                |s| s.to_string(),
            ),
            detail,
            note,
        })
    }

    /// The retention policies of the database, or `None` when the database does not exist.
    async fn retention_policies(&self, what: &str) -> Result<Option<Vec<String>>, NodeError> {
        let body = self
            .query(&influxql::show_retention_policies(&self.database), what)
            .await?;
        let results = self.statements(
            parse::parse_query(&body, Rows::Table, &mut Interner::default()),
            what,
        )?;
        let Some(st) = results.first() else {
            return Err(self.err(ErrorKind::BadResponse, format!("{what}: no result")));
        };
        if !self.database_found(st, what)? {
            return Ok(None);
        }
        let names = st
            .series
            .iter()
            .flat_map(|s| s.table.iter())
            .filter_map(|row| row.first().cloned().flatten())
            .collect();
        Ok(Some(names))
    }

    /// The primary's database (and retention policy) exist and can be read.
    async fn probe_read(&self, server: Option<&Server>) -> Result<String, NodeError> {
        let what = "checking the database (SHOW RETENTION POLICIES)";
        let Some(policies) = self.retention_policies(what).await? else {
            return Err(self.missing_database(server).await);
        };
        if let Some(rp) = &self.retention_policy
            && !policies.contains(rp)
        {
            return Err(self.err(
                ErrorKind::Rejected,
                format!(
                    "retention policy {rp:?} does not exist in database {:?} (it has: {})",
                    self.database,
                    policies.join(", ")
                ),
            ));
        }
        // Reading needs READ on the database; SHOW MEASUREMENTS is refused without it.
        let what = "reading the database (SHOW MEASUREMENTS)";
        let body = self.query(influxql::SHOW_MEASUREMENTS, what).await?;
        let results = self.statements(
            parse::parse_query(&body, Rows::Table, &mut Interner::default()),
            what,
        )?;
        let mut measurements = 0;
        for st in &results {
            if self.found(st, what)? {
                measurements += st.series.iter().map(|s| s.table.len()).sum::<usize>();
            }
        }
        Ok(format!(
            "database {:?} exists and can be read ({measurements} measurement{})",
            self.database,
            if measurements == 1 { "" } else { "s" }
        ))
    }

    /// A missing primary database, naming the databases the server has where it can say
    /// (1.x and 2.x; InfluxDB 3's InfluxQL has no `SHOW DATABASES`).
    pub(super) async fn missing_database(&self, server: Option<&Server>) -> NodeError {
        let mut message = format!(
            "database {:?} does not exist on {}",
            self.database, self.shown_url
        );
        if !self.creates_database {
            message.push_str(" (dms does not create it: check the name, or create it there)");
        }
        // InfluxDB 3 has no SHOW DATABASES; a server not yet named is asked anyway.
        if server.and_then(Server::major).is_none_or(|m| m <= 2)
            && let Ok(names) = self.databases().await
        {
            let names: Vec<String> = names.into_iter().filter(|n| n != "_internal").collect();
            message.push_str(&format!(
                "; the databases there: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ));
        }
        self.err(ErrorKind::Rejected, message)
    }

    /// `SHOW DATABASES` (1.x, 2.x).
    async fn databases(&self) -> Result<Vec<String>, NodeError> {
        let what = "listing databases (SHOW DATABASES)";
        let body = self.query("SHOW DATABASES", what).await?;
        let results = self.statements(
            parse::parse_query(&body, Rows::Table, &mut Interner::default()),
            what,
        )?;
        Ok(results
            .iter()
            .flat_map(|st| st.series.iter())
            .flat_map(|s| s.table.iter())
            .filter_map(|row| row.first().cloned().flatten())
            .collect())
    }

    /// A backup's database can be written: an empty write is accepted, or the database is
    /// missing and the first write will create it (a note, not a failure; nothing is
    /// created here), or it is missing and `create_database` is off (a failure). InfluxDB 3
    /// creates databases on write and may refuse an empty one: there the database is only
    /// looked up.
    async fn probe_write(
        &self,
        server: Option<&Server>,
    ) -> Result<(String, Option<String>), NodeError> {
        if server.and_then(Server::major) == Some(3) {
            let what = "checking the database (SHOW RETENTION POLICIES)";
            return Ok(match self.retention_policies(what).await? {
                Some(_) => (format!("database {:?} exists", self.database), None),
                None => (
                    format!("database {:?} does not exist yet", self.database),
                    Some("will be created on first run (InfluxDB 3 creates it on write)".into()),
                ),
            });
        }
        let what = "checking that the database can be written (an empty write)";
        let write = || {
            self.client
                .post(self.write_url.clone())
                .header(CONTENT_TYPE, "text/plain; charset=utf-8")
                .body("")
        };
        let reply = self.call(write(), what).await?;
        if reply.status.is_success() {
            return Ok((format!("database {:?} can be written", self.database), None));
        }
        let message = Self::message(&reply);
        if reply.status == StatusCode::NOT_FOUND && super::client::is_database_not_found(&message) {
            if !self.creates_database {
                return Err(self.missing_database(server).await);
            }
            return Ok((
                format!("database {:?} does not exist yet", self.database),
                Some("will be created on first run".into()),
            ));
        }
        Err(self.err(
            match reply.status.as_u16() {
                401 | 403 => ErrorKind::Auth,
                500..=599 => ErrorKind::Server,
                _ => ErrorKind::Rejected,
            },
            format!(
                "{what}: HTTP {}: {}",
                reply.status.as_u16(),
                truncate(&message)
            ),
        ))
    }
}
