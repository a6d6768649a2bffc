//! How a batch of texts is cut into forward chunks: by token budget, balanced over threads.

use super::CHUNK_TOKENS;

/// Relative cost of a sequence of `l` tokens (projections are linear in `l`,
/// attention quadratic; ~ l / 2300 extra per token for hidden size 384).
fn seq_cost(l: usize) -> f64 {
    l as f64 * (1.0 + l as f64 / 2300.0)
}

/// Groups sequence indices into chunks of at most `CHUNK_TOKENS` tokens (a
/// longer single sequence gets its own chunk). With several threads and
/// several texts, there are at least `threads` chunks (a multiple of it when
/// possible) balanced by cost (longest-first greedy).
pub(super) fn plan_chunks(lens: &[usize], threads: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by(|&a, &b| lens[b].cmp(&lens[a]).then(a.cmp(&b)));
    let total: usize = lens.iter().sum();
    if threads <= 1 || lens.len() == 1 {
        let mut chunks = Vec::new();
        let mut cur: Vec<usize> = Vec::new();
        let mut cur_tokens = 0;
        for i in order {
            if !cur.is_empty() && cur_tokens + lens[i] > CHUNK_TOKENS {
                chunks.push(std::mem::take(&mut cur));
                cur_tokens = 0;
            }
            cur.push(i);
            cur_tokens += lens[i];
        }
        if !cur.is_empty() {
            chunks.push(cur);
        }
        return chunks;
    }
    let mut n = total.div_ceil(CHUNK_TOKENS).max(threads);
    n = n.div_ceil(threads) * threads;
    let n = n.min(lens.len());
    let mut chunks: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut load = vec![0f64; n];
    for i in order {
        let (best, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("n >= 1");
        chunks[best].push(i);
        load[best] += seq_cost(lens[i]);
    }
    chunks
}

/// Groups sequence indices into padded batches for [`Backend::Candle`]: longest first, each
/// batch at most [`CHUNK_TOKENS`] tokens once padded to its longest member (a longer single
/// sequence gets its own batch). Sorting by length keeps the padding small.
pub(super) fn plan_padded_chunks(lens: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by(|&a, &b| lens[b].cmp(&lens[a]).then(a.cmp(&b)));
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    for i in order {
        // Sorted longest first: the first member sets the padded length.
        if let Some(&first) = cur.first() {
            if (cur.len() + 1) * lens[first] > CHUNK_TOKENS {
                chunks.push(std::mem::take(&mut cur));
            }
        }
        cur.push(i);
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}
