//! A realistic synthetic history in a new database, for measuring the site's generation and
//! for looking at a site with years of history. See `site-gen/BENCHMARKS.md`. Given a
//! database that exists, only the site is generated again, from the history in it.
//!
//! ```sh
//! cargo run --release -p site-gen --example synthetic -- DB [COMMITS] [SERIES] [--site DIR] [--hostile] [--no-database]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use site_gen::{SiteOptions, generate};
use testdata::history::{SyntheticOptions, populate};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |args: &mut Vec<String>, name: &str| {
        args.iter().position(|a| a == name).map(|i| {
            args.remove(i);
        })
    };
    let hostile = flag(&mut args, "--hostile").is_some();
    let no_database = flag(&mut args, "--no-database").is_some();
    let site = args.iter().position(|a| a == "--site").map(|i| {
        let dir = PathBuf::from(args.get(i + 1).expect("--site DIR"));
        args.drain(i..=i + 1);
        dir
    });
    let usage = "usage: synthetic DB [COMMITS] [SERIES] [--site DIR] [--hostile] [--no-database]";
    let db_path = PathBuf::from(args.first().expect(usage));
    let number = |i: usize, default: usize| args.get(i).map_or(default, |a| a.parse().expect(usage));
    let options = SyntheticOptions {
        commits: number(1, 1000),
        series: number(2, 200),
        hostile,
        ..SyntheticOptions::default()
    };
    let existed = db_path.exists();
    let mut db = collector::Database::open(&db_path).expect("the database opens");
    if existed {
        // Only the site again, from the history made before.
        println!("{} exists: its history is kept", db_path.display());
    } else {
        let report = populate(&mut db, &options).expect("the synthetic history is stored");
        println!(
            "{} commits x {} series: {} runs stored and analysed in {:.1} s -> {}",
            options.commits,
            report.series,
            report.runs,
            report.seconds,
            db_path.display()
        );
    }
    if let Some(dir) = site {
        let t = Instant::now();
        let site_options = SiteOptions {
            export_database: !no_database,
            ..SiteOptions::default()
        };
        let r = generate(&db, &dir, &site_options).expect("the site is generated");
        println!(
            "site: {} pages, {} plots in {:.2} s -> {}",
            r.pages,
            r.plots,
            t.elapsed().as_secs_f64(),
            r.index.display()
        );
    }
}
