//! Decides every stored comparison of a database again from its raw samples by the paired
//! rule as it is now, and says which called a regression or an improvement: how an A/A
//! campaign's stored comparisons read under a changed rule (`docs/statistics.md`). It writes
//! the new verdicts into the database: run it on a copy.
//!
//! ```sh
//! cargo run --release -p collector --example redecide -- COPY.sqlite
//! ```

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: redecide COPY.sqlite")?;
    let mut db = collector::Database::open(std::path::Path::new(&path))?;
    let ids: Vec<i64> = db.comparisons()?.iter().map(|c| c.id).collect();
    let (mut regressions, mut improvements) = (0, 0);
    for id in &ids {
        let rows = db.redecide_comparison(*id)?;
        let changes: Vec<String> = rows
            .iter()
            .filter(|(_, _, v)| v.is_change())
            .map(|(s, m, v)| format!("{} {s} {m}", v.as_str()))
            .collect();
        if changes.iter().any(|c| c.starts_with("regression")) {
            regressions += 1;
        }
        if changes.iter().any(|c| c.starts_with("improvement")) {
            improvements += 1;
        }
        if !changes.is_empty() {
            println!("comparison {id}: {}", changes.join("; "));
        }
    }
    println!(
        "{} comparisons: {regressions} calling a regression, {improvements} an improvement",
        ids.len()
    );
    Ok(())
}
