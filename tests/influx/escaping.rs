//! Names that need escaping, end to end: line protocol on the way in, InfluxQL in every query,
//! JSON on the way out.

use super::support::{
    Options, Project, Target, assert_same_points, assert_same_raw, bars, dump, node, put, servers,
    sync,
};
use dms::history::Status;
use dms::model::SeriesKey;
use dms::sync::Selection;

const SYMBOLS: [&str; 11] = [
    "X",
    "BRK'B",
    "say \"hi\"",
    "with space",
    "a,b",
    "k=v",
    "ünï·株式",
    "X' OR symbol!='",
    r"back\slash",
    "semi;colon -- ",
    "\"X\" OR 1=1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbols_with_quotes_spaces_commas_and_unicode_round_trip() {
    let Some(s) = servers(2).await else { return };
    let opts = Options::default();
    let schema = opts.schema();
    let p = Target::on(&s[0], "market");
    let b = Target::on(&s[1], "copy");
    let primary = node("primary", &p, &schema);
    let mut series = Vec::new();
    for (i, sym) in SYMBOLS.iter().enumerate() {
        // A different number of bars per symbol, so a query that matched another symbol
        // would show in the counts.
        put(&*primary, bars(&schema, sym, "1d", i + 2)).await;
        series.push(SeriesKey::new(*sym, "1d"));
    }
    series.sort();
    assert_eq!(primary.list_series().await.expect("list"), series);
    for (i, sym) in SYMBOLS.iter().enumerate() {
        let key = SeriesKey::new(*sym, "1d");
        let points = dump(&*primary, &key).await;
        assert_eq!(points.len(), i + 2, "{sym:?}");
        assert!(
            points.iter().all(|p| p.tag("symbol") == Some(sym)),
            "{sym:?}"
        );
    }
    let newest = primary.newest(&series).await.expect("newest");
    assert_eq!(newest.len(), series.len());

    let project = Project::new(&p, std::slice::from_ref(&b), &opts);
    let app = project.app();
    let out = sync(&app, Selection::all()).await;
    assert_eq!(out.status, Status::Success, "{:?}", out.error);
    assert_eq!(out.report.units.len(), SYMBOLS.len());
    let backup = node("backup1", &b, &schema);
    assert_eq!(backup.list_series().await.expect("list"), series);
    assert_same_points(&*primary, &*backup, &series).await;
    assert_same_raw((&s[0], "market"), (&s[1], "copy"), &["kline"]).await;
    for k in &series {
        assert_eq!(
            project.checkpoint("backup1", k),
            newest.get(k).copied(),
            "{k}"
        );
    }
    let tag_values = "SHOW TAG VALUES FROM \"kline\" WITH KEY = \"symbol\"";
    assert_eq!(
        s[0].query("market", tag_values).await,
        s[1].query("copy", tag_values).await
    );
}
