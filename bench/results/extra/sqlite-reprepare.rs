// Herald's history query (src/store/sqlite.rs chat_history, no before/after) on a copy of the bench database:
// which bound parameter makes SQLite re-prepare the cached statement on every execution, and what it costs.
use rusqlite::{Connection, StatementStatus, ToSql};
use std::time::Instant;
fn run(conn: &Connection, sql: &str, args: &[&dyn ToSql], n: usize) -> (f64, i32) {
    let t = Instant::now();
    let mut rows = 0usize;
    for _ in 0..n {
        let mut s = conn.prepare_cached(sql).unwrap();
        let r: Vec<(i64, String, String, String, i64)> = s
            .query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows += r.len();
    }
    assert_eq!(rows, n * 50);
    let reprepares = conn.prepare_cached(sql).unwrap().get_status(StatementStatus::RePrepare);
    (t.elapsed().as_secs_f64() * 1e6 / n as f64, reprepares)
}
fn main() {
    let path = std::env::args().nth(1).expect("db path");
    let conn = Connection::open(path).unwrap();
    println!("sqlite {}", rusqlite::version());
    let sel = "SELECT id, room_id, sender, message, sent_at FROM chat_messages WHERE";
    let n = 20000;
    let max = i64::MAX;
    let variants: Vec<(&str, String, Vec<&dyn ToSql>)> = vec![
        ("herald: room_id = ?1 AND id < ?2 LIMIT ?3", format!("{sel} room_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"), vec![&"room-1", &max, &50i64]),
        ("room_id = ?1 AND id < ?2 LIMIT 50", format!("{sel} room_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT 50"), vec![&"room-1", &max]),
        ("room_id = ?1 LIMIT ?2 (no id bound)", format!("{sel} room_id = ?1 ORDER BY id DESC LIMIT ?2"), vec![&"room-1", &50i64]),
        ("room_id = ?1 LIMIT 50", format!("{sel} room_id = ?1 ORDER BY id DESC LIMIT 50"), vec![&"room-1"]),
        ("room_id = 'room-1' LIMIT 50 (all literal)", format!("{sel} room_id = 'room-1' ORDER BY id DESC LIMIT 50"), vec![]),
    ];
    for (name, sql, args) in &variants {
        let (us, re) = run(&conn, sql, args, n);
        println!("{name:45} {us:6.1} us/query, re-prepared {re} times in {n} executions");
    }
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).unwrap();
    conn.flush_prepared_statement_cache();
    let (name, sql, args) = &variants[0];
    let (us, re) = run(&conn, sql, args, n);
    println!("{:45} {us:6.1} us/query, re-prepared {re} times in {n} executions", format!("{name} + ENABLE_QPSG"));
}
