//! The Redis store (feature `redis`): the exchange's [`Store`] on a Redis stream and a few keys,
//! and the shared counters and entries, through redis-rs's blocking client. Every write that
//! must be atomic is one Lua script; a connection that fails is dropped and made again at the
//! next call, with connect, read and write timeouts so that an unreachable Redis never blocks
//! routing.
//!
//! Keys of namespace `ns` (the version is the key layout's, [`super::store::KEY_VERSION`]):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `pointsman:v1:ns:epoch` | string | the namespace's epoch, new at each seeding |
//! | `pointsman:v1:ns:log` | stream | the increments, field `d` |
//! | `pointsman:v1:ns:snapshot` | string | the compacted snapshot (a saved router) |
//! | `pointsman:v1:ns:snapshot_meta` | string | its clock and log position (JSON) |
//! | `pointsman:v1:ns:cursor` | string | the log position the snapshot covers |
//! | `pointsman:v1:ns:claim` | string | the compaction lease (expires) |
//! | `pointsman:v1:ns:counter:<key>` | string | a shared counter (`INCRBYFLOAT`) |
//! | `pointsman:v1:ns:counter:<key>:id:<id>` | string | an applied increment id (expires) |
//! | `pointsman:v1:ns:entry:<key>` | hash | a last-writer-wins entry: `v` version, `d` value (expires) |
//!
//! A decision policy's shared state ([`super::SharedPolicyState`]) uses counters
//! `spend:<budget>` and `requests:<budget>` (fixed totals), `spend:<budget>@<bucket>` and
//! `requests:<budget>@<bucket>` (rolling windows' time buckets, expiring once out of the window),
//! and entries `session:<id>` and `first:<budget>`.

use std::time::Duration;

use redis::{Client, Connection, Script, Value};

use super::counters::{check_amount, check_ttl, SharedCounters, SharedEntries, Spend};
use super::store::{Keys, Poll, Store};
use crate::error::{Error, Result};

/// Connect, read and write timeout of every Redis call, milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;

/// A connection to one Redis, made again after any failure.
pub struct RedisConnection {
    client: Client,
    name: String,
    connection: Option<Connection>,
    timeout: Duration,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("name", &self.name)
            .field("connected", &self.connection.is_some())
            .finish()
    }
}

impl RedisConnection {
    /// A connection to the Redis at `url` (`redis://host:port/db`, `redis+unix:///path`),
    /// made at first use, with `timeout_ms` for connecting, reading and writing.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a URL redis-rs does not accept.
    pub fn new(url: &str, timeout_ms: u64) -> Result<RedisConnection> {
        let client = Client::open(url).map_err(|e| {
            Error::Config(format!(
                "redis url {:?}: {e} (expected redis://host:port/db or redis+unix:///path)",
                redact(url)
            ))
        })?;
        Ok(RedisConnection {
            client,
            name: redact(url),
            connection: None,
            timeout: Duration::from_millis(timeout_ms.max(1)),
        })
    }

    /// Runs `f` on the connection (made first when needed); a failure drops the connection.
    fn run<T>(&mut self, f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>) -> Result<T> {
        if self.connection.is_none() {
            let c = self
                .client
                .get_connection_with_timeout(self.timeout)
                .and_then(|c| {
                    c.set_read_timeout(Some(self.timeout))?;
                    c.set_write_timeout(Some(self.timeout))?;
                    Ok(c)
                })
                .map_err(|e| self.error(&e))?;
            self.connection = Some(c);
        }
        let c = self.connection.as_mut().expect("connected just above");
        f(c).map_err(|e| {
            self.connection = None;
            self.error(&e)
        })
    }

    fn error(&self, e: &redis::RedisError) -> Error {
        Error::Store {
            store: self.name.clone(),
            message: e.to_string(),
        }
    }
}

/// `url` without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

const APPEND: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #ARGV do redis.call('XADD', KEYS[2], '*', 'd', ARGV[i]) end
return 1
";

const SEED: &str = r"
local e = redis.call('GET', KEYS[1])
if e then return e end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[4], '0-0')
return ARGV[1]
";

const COMPACT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local function pos(id)
  local a, b = string.match(id or '', '^(%d+)-(%d+)$')
  if not a then return -1, -1 end
  return tonumber(a), tonumber(b)
end
local na, nb = pos(ARGV[4])
local ca, cb = pos(redis.call('GET', KEYS[4]))
if na < ca or (na == ca and nb <= cb) then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[4], ARGV[4])
redis.call('XTRIM', KEYS[5], 'MINID', na .. '-' .. (nb + 1))
return 1
";

/// The exchange's store on Redis. See the [module documentation](self) for the keys.
#[derive(Debug)]
pub struct RedisStore {
    connection: RedisConnection,
    keys: Keys,
}

impl RedisStore {
    /// The store of `namespace` on the Redis at `url`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad URL or namespace.
    pub fn new(url: &str, namespace: &str) -> Result<RedisStore> {
        Ok(RedisStore {
            connection: RedisConnection::new(url, DEFAULT_TIMEOUT_MS)?,
            keys: Keys::new(namespace)?,
        })
    }

    /// With `timeout_ms` for connecting, reading and writing.
    #[must_use]
    pub fn with_timeout(mut self, timeout_ms: u64) -> RedisStore {
        self.connection.timeout = Duration::from_millis(timeout_ms.max(1));
        self
    }

    /// Appends raw bytes to the log without any check, as a foreign or corrupt writer (or a
    /// duplicated delivery) would: for tests of the decoder's guard.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub fn inject(&mut self, bytes: &[u8]) -> Result<()> {
        let log = self.keys.key("log");
        self.connection.run(|c| {
            redis::cmd("XADD")
                .arg(&log)
                .arg("*")
                .arg("d")
                .arg(bytes)
                .query::<String>(c)
        })?;
        Ok(())
    }

    /// The log entries' bytes, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub fn log(&mut self) -> Result<Vec<Vec<u8>>> {
        let log = self.keys.key("log");
        let v: Value = self
            .connection
            .run(|c| redis::cmd("XRANGE").arg(&log).arg("-").arg("+").query(c))?;
        Ok(stream_entries(v, &self.connection.name)?
            .into_iter()
            .map(|(_, b)| b)
            .collect())
    }
}

/// The `(id, field d)` pairs of an `XRANGE` reply.
fn stream_entries(v: Value, store: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let bad = || Error::Store {
        store: store.to_string(),
        message: "an XRANGE reply of an unexpected shape".into(),
    };
    let Value::Array(items) = v else {
        return Err(bad());
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(mut pair) = item else {
            return Err(bad());
        };
        if pair.len() != 2 {
            return Err(bad());
        }
        let fields = pair.pop().ok_or_else(bad)?;
        let id: String = redis::from_redis_value(pair.pop().ok_or_else(bad)?).map_err(|_| bad())?;
        let fields: Vec<Vec<u8>> = redis::from_redis_value(fields).map_err(|_| bad())?;
        // An entry without a field `d` (written by something else) reads as empty bytes,
        // which the decoder rejects.
        let data = fields
            .chunks(2)
            .find(|kv| kv.len() == 2 && kv[0] == b"d")
            .map(|kv| kv[1].clone())
            .unwrap_or_default();
        out.push((id, data));
    }
    Ok(out)
}

impl Store for RedisStore {
    fn name(&self) -> String {
        format!("{} ({})", self.connection.name, self.keys.namespace)
    }

    fn poll(&mut self, cursor: &str, max: usize) -> Result<Poll> {
        let k = &self.keys;
        let (epoch, meta, log) = (k.key("epoch"), k.key("snapshot_meta"), k.key("log"));
        let start = format!("({cursor}");
        let (e, m, len, entries): (Option<String>, Option<Vec<u8>>, u64, Value) =
            self.connection.run(|c| {
                let mut p = redis::pipe();
                p.cmd("GET")
                    .arg(&epoch)
                    .cmd("GET")
                    .arg(&meta)
                    .cmd("XLEN")
                    .arg(&log);
                if max > 0 {
                    p.cmd("XRANGE")
                        .arg(&log)
                        .arg(&start)
                        .arg("+")
                        .arg("COUNT")
                        .arg(max);
                } else {
                    p.cmd("XRANGE").arg(&log).arg("+").arg("+");
                }
                p.query(c)
            })?;
        let epoch = match e {
            Some(s) => Some(s.parse::<u64>().map_err(|_| {
                Error::format(
                    self.keys.key("epoch"),
                    format!("epoch {s:?} is not a number"),
                )
            })?),
            None => None,
        };
        let mut entries = stream_entries(entries, &self.connection.name)?;
        if max == 0 {
            entries.clear();
        }
        Ok(Poll {
            epoch,
            meta: m,
            log_len: len,
            entries,
        })
    }

    fn seed(&mut self, epoch: u64, snapshot: &[u8], meta: &[u8]) -> Result<u64> {
        let k = &self.keys;
        let keys = [
            k.key("epoch"),
            k.key("snapshot"),
            k.key("snapshot_meta"),
            k.key("cursor"),
        ];
        let now: String = self.connection.run(|c| {
            Script::new(SEED)
                .key(&keys[0])
                .key(&keys[1])
                .key(&keys[2])
                .key(&keys[3])
                .arg(epoch.to_string())
                .arg(snapshot)
                .arg(meta)
                .invoke(c)
        })?;
        now.parse::<u64>().map_err(|_| {
            Error::format(
                self.keys.key("epoch"),
                format!("epoch {now:?} is not a number"),
            )
        })
    }

    fn append(&mut self, epoch: u64, entries: &[Vec<u8>]) -> Result<bool> {
        let (e, log) = (self.keys.key("epoch"), self.keys.key("log"));
        let done: i64 = self.connection.run(|c| {
            let script = Script::new(APPEND);
            let mut inv = script.key(&e);
            inv.key(&log).arg(epoch.to_string());
            for bytes in entries {
                inv.arg(bytes.as_slice());
            }
            inv.invoke(c)
        })?;
        Ok(done == 1)
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let key = self.keys.key("snapshot");
        self.connection
            .run(|c| redis::cmd("GET").arg(&key).query(c))
    }

    fn claim(&mut self, replica: &str, ttl_ms: u64) -> Result<bool> {
        let key = self.keys.key("claim");
        // Take the lease when free, or renew it when this replica holds it.
        let script = r"
local who = redis.call('GET', KEYS[1])
if who and who ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";
        let got: i64 = self.connection.run(|c| {
            Script::new(script)
                .key(&key)
                .arg(replica)
                .arg(ttl_ms.max(1))
                .invoke(c)
        })?;
        Ok(got == 1)
    }

    fn compact(&mut self, epoch: u64, snapshot: &[u8], meta: &[u8], cursor: &str) -> Result<bool> {
        let k = &self.keys;
        let keys = [
            k.key("epoch"),
            k.key("snapshot"),
            k.key("snapshot_meta"),
            k.key("cursor"),
            k.key("log"),
        ];
        let done: i64 = self.connection.run(|c| {
            Script::new(COMPACT)
                .key(&keys[0])
                .key(&keys[1])
                .key(&keys[2])
                .key(&keys[3])
                .key(&keys[4])
                .arg(epoch.to_string())
                .arg(snapshot)
                .arg(meta)
                .arg(cursor)
                .invoke(c)
        })?;
        Ok(done == 1)
    }
}

const ADD_WITHIN: &str = r"
local raw = redis.call('GET', KEYS[1]) or '0'
local value = tonumber(raw)
if value == nil or value ~= value or value == math.huge or value == -math.huge then
  return {'unreadable', raw}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'duplicate', tostring(value)} end
local amount = tonumber(ARGV[1])
if ARGV[2] ~= '' and value + amount > tonumber(ARGV[2]) then return {'refused', tostring(value)} end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
return {'added', redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])}
";

/// Counters shared through Redis: an increment is one Lua script (the id's marker with a time
/// to live, the limit check, `INCRBYFLOAT`), so concurrent replicas never pass a limit and a
/// retried increment counts once.
#[derive(Debug)]
pub struct RedisCounters {
    connection: std::sync::Mutex<RedisConnection>,
    keys: Keys,
    dedupe_ms: u64,
}

impl RedisCounters {
    /// The counters of `namespace` on the Redis at `url`, remembering an increment id for
    /// `dedupe_ms`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad URL or namespace.
    pub fn new(url: &str, namespace: &str, dedupe_ms: u64) -> Result<RedisCounters> {
        Ok(RedisCounters {
            connection: std::sync::Mutex::new(RedisConnection::new(url, DEFAULT_TIMEOUT_MS)?),
            keys: Keys::new(namespace)?,
            dedupe_ms: dedupe_ms.max(1),
        })
    }

    fn step(&self, key: &str, id: &str, amount: f64, limit: Option<f64>) -> Result<Spend> {
        check_amount(amount)?;
        let counter = self.keys.key(&format!("counter:{key}"));
        let marker = format!("{counter}:id:{id}");
        let mut c = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let name = c.name.clone();
        let (what, value): (String, String) = c.run(|c| {
            Script::new(ADD_WITHIN)
                .key(&counter)
                .key(&marker)
                .arg(format!("{amount:e}"))
                .arg(limit.map_or_else(String::new, |l| format!("{l:e}")))
                .arg(self.dedupe_ms)
                .invoke(c)
        })?;
        if what == "unreadable" {
            return Err(unreadable_counter(&value, &counter, &name));
        }
        let value = counter_value(&value, &counter, &name)?;
        Ok(match what.as_str() {
            "added" => Spend::Added(value),
            "refused" => Spend::Refused(value),
            _ => Spend::Duplicate(value),
        })
    }
}

impl SharedCounters for RedisCounters {
    fn add(&self, key: &str, id: &str, amount: f64) -> Result<f64> {
        Ok(match self.step(key, id, amount, None)? {
            Spend::Added(v) | Spend::Refused(v) | Spend::Duplicate(v) => v,
        })
    }

    fn add_within(&self, key: &str, id: &str, amount: f64, limit: f64) -> Result<Spend> {
        self.step(key, id, amount, Some(limit))
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<f64>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = keys
            .iter()
            .map(|k| self.keys.key(&format!("counter:{k}")))
            .collect();
        let mut c = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let values: Vec<Option<String>> = c.run(|c| redis::cmd("MGET").arg(&names).query(c))?;
        values
            .into_iter()
            .zip(&names)
            .map(|(v, name)| match v {
                None => Ok(0.0),
                Some(s) => counter_value(&s, name, &c.name),
            })
            .collect()
    }

    fn expire(&self, key: &str, ttl_ms: u64) -> Result<()> {
        let counter = self.keys.key(&format!("counter:{key}"));
        let mut c = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _: i64 = c.run(|c| {
            redis::cmd("PEXPIRE")
                .arg(&counter)
                .arg(ttl_ms.max(1))
                .query(c)
        })?;
        Ok(())
    }

    fn get(&self, key: &str) -> Result<f64> {
        let counter = self.keys.key(&format!("counter:{key}"));
        let mut c = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let v: Option<String> = c.run(|c| redis::cmd("GET").arg(&counter).query(c))?;
        match v {
            None => Ok(0.0),
            Some(s) => counter_value(&s, &counter, &c.name),
        }
    }
}

/// A counter's value as Redis holds it: a finite number. Anything else (text, `nan`, `inf`, a
/// number past `f64`'s range) is a store error, like an unreachable store: a budget read as
/// infinite would refuse for good, one read as minus infinity would never stop.
fn counter_value(value: &str, counter: &str, store: &str) -> Result<f64> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| unreadable_counter(value, counter, store))
}

fn unreadable_counter(value: &str, counter: &str, store: &str) -> Error {
    Error::Store {
        store: store.to_string(),
        message: format!("counter {counter} holds {value:?}, not a finite number"),
    }
}

const PUT_ENTRY: &str = r"
local v = redis.call('HGET', KEYS[1], 'v')
if v and tonumber(v) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Last-writer-wins entries shared through Redis: a hash per entry with its version, written by
/// one Lua script that keeps the newer version, expiring after its time to live.
#[derive(Debug)]
pub struct RedisEntries {
    connection: std::sync::Mutex<RedisConnection>,
    keys: Keys,
}

impl RedisEntries {
    /// The entries of `namespace` on the Redis at `url`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad URL or namespace.
    pub fn new(url: &str, namespace: &str) -> Result<RedisEntries> {
        Ok(RedisEntries {
            connection: std::sync::Mutex::new(RedisConnection::new(url, DEFAULT_TIMEOUT_MS)?),
            keys: Keys::new(namespace)?,
        })
    }
}

impl SharedEntries for RedisEntries {
    fn put(&self, key: &str, value: &[u8], version: u64, ttl_ms: u64) -> Result<bool> {
        check_ttl(ttl_ms)?;
        let entry = self.keys.key(&format!("entry:{key}"));
        let mut c = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let done: i64 = c.run(|c| {
            Script::new(PUT_ENTRY)
                .key(&entry)
                .arg(value)
                .arg(version.to_string())
                .arg(ttl_ms)
                .invoke(c)
        })?;
        Ok(done == 1)
    }

    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
        let entry = self.keys.key(&format!("entry:{key}"));
        let mut c = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (v, d): (Option<String>, Option<Vec<u8>>) =
            c.run(|c| redis::cmd("HMGET").arg(&entry).arg("v").arg("d").query(c))?;
        Ok(match (v.and_then(|v| v.parse::<u64>().ok()), d) {
            (Some(v), Some(d)) => Some((d, v)),
            _ => None,
        })
    }
}
