//! What no viewer can see is merged away: sounds shorter than [`MIN_CUE_MS`] fold into a
//! neighbour, closures are kept (lengthened to [`MIN_CLOSURE_MS`] when shorter), and equal
//! neighbours merge.

use crate::{Kind, MIN_CLOSURE_MS, MIN_CUE_MS, Segment};

/// Folds every segment shorter than [`MIN_CUE_MS`] into a neighbour (closures are
/// lengthened instead when the neighbours can spare the time) and merges neighbours that
/// show the same viseme.
pub(crate) fn smooth(segments: &mut Vec<Segment>) {
    merge_equal(segments);
    loop {
        let shortest = segments
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.fixed && s.duration() < MIN_CUE_MS)
            .min_by(|a, b| a.1.duration().total_cmp(&b.1.duration()))
            .map(|(i, _)| i);
        let Some(i) = shortest else { break };

        if segments[i].kind == Kind::Closure {
            // Kept whatever happens: lengthened to a frame if it is shorter and the
            // neighbours can spare it, else as it is.
            if segments[i].duration() < MIN_CLOSURE_MS {
                lengthen(segments, i);
            }
            segments[i].fixed = true;
            continue;
        }
        let target = fold_target(segments, i);
        let Some(t) = target else {
            segments[i].fixed = true;
            continue;
        };
        let short = segments.remove(i);
        let t = if t > i { t - 1 } else { t };
        let target = &mut segments[t];
        target.start = target.start.min(short.start);
        target.end = target.end.max(short.end);
        if target.viseme == short.viseme {
            target.weight = target.weight.max(short.weight);
        }
        merge_equal(segments);
    }
    // Closures that were marked fixed while lengthening are ordinary segments again.
    merge_equal(segments);
}

/// Takes time from the neighbours so a closure lasts [`MIN_CLOSURE_MS`]; false if they
/// cannot spare it.
fn lengthen(segments: &mut [Segment], i: usize) -> bool {
    let need = MIN_CLOSURE_MS - segments[i].duration();
    let spare = |s: &Segment| {
        if s.fixed && s.kind == Kind::Rest {
            s.duration() * 0.5
        } else {
            (s.duration() - MIN_CUE_MS).max(0.0)
        }
    };
    let before = i.checked_sub(1).map_or(0.0, |j| spare(&segments[j]));
    let after = segments.get(i + 1).map_or(0.0, spare);
    if before + after < need {
        return false;
    }
    let take_before = (need / 2.0).min(before).max(need - after);
    let take_after = need - take_before;
    if take_before > 0.0 {
        segments[i - 1].end -= take_before;
        segments[i].start -= take_before;
    }
    if take_after > 0.0 {
        segments[i + 1].start += take_after;
        segments[i].end += take_after;
    }
    true
}

/// The neighbour a short segment folds into: one with the same viseme, else a sounding
/// one rather than a rest, else the shorter.
fn fold_target(segments: &[Segment], i: usize) -> Option<usize> {
    let candidates: Vec<usize> = [i.checked_sub(1), Some(i + 1)]
        .into_iter()
        .flatten()
        .filter(|&j| j < segments.len())
        .collect();
    let me = &segments[i];
    candidates
        .iter()
        .copied()
        .find(|&j| segments[j].viseme == me.viseme)
        .or_else(|| {
            candidates
                .iter()
                .copied()
                .filter(|&j| segments[j].kind != Kind::Rest || me.kind == Kind::Rest)
                .min_by(|&a, &b| segments[a].duration().total_cmp(&segments[b].duration()))
        })
        .or_else(|| candidates.iter().copied().find(|&j| !segments[j].fixed))
}

fn merge_equal(segments: &mut Vec<Segment>) {
    let mut merged: Vec<Segment> = Vec::with_capacity(segments.len());
    for s in segments.drain(..) {
        match merged.last_mut() {
            Some(last)
                if last.viseme == s.viseme
                    && !(last.fixed && last.kind == Kind::Rest)
                    && !(s.fixed && s.kind == Kind::Rest) =>
            {
                last.end = s.end;
                last.weight = last.weight.max(s.weight);
                last.fixed = false;
            }
            Some(last)
                if last.viseme == s.viseme && last.kind == Kind::Rest && s.kind == Kind::Rest =>
            {
                last.end = s.end;
                last.fixed |= s.fixed;
            }
            _ => merged.push(s),
        }
    }
    *segments = merged;
}
