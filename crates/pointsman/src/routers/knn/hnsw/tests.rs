//! Unit tests of the graph.

use super::build::draw_levels;
use super::search::Cand;
use super::*;

#[test]
fn level_distribution() {
    let lv = draw_levels(200_000, 16, 1);
    let ge1 = lv.iter().filter(|&&l| l >= 1).count() as f64 / 2e5;
    let ge2 = lv.iter().filter(|&&l| l >= 2).count() as f64 / 2e5;
    assert!((ge1 - 1.0 / 16.0).abs() < 0.003, "{ge1}");
    assert!((ge2 - 1.0 / 256.0).abs() < 0.001, "{ge2}");
}

#[test]
fn cand_order() {
    let a = Cand { sim: 0.5, id: 3 };
    let b = Cand { sim: 0.5, id: 7 };
    let c = Cand { sim: 0.6, id: 9 };
    assert!(a > b && c > a);
}

fn assert_send_sync<T: Send + Sync>() {}
#[test]
fn send_sync() {
    assert_send_sync::<Hnsw>();
    assert_send_sync::<SearchScratch>();
}
