//! The MPEG-TS demuxer (`xiuload::hls::ts`) as an HLS viewer drives it: a segment pushed in
//! reads cut as the first byte says, then `finish`, then every video access unit searched for a
//! stamp (`find_stamp_in_annexb`, which parses SEI NAL units).
//!
//! Besides not panicking: where the reads are cut changes nothing (access units and every
//! counter equal those of one whole push), and a demuxer keeping only video heads, as a viewer's
//! does, fed in the same cuts, gives the same access units cut to their heads (same timestamps,
//! sizes and keyframe flags) and the same counters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xiuload::hls::ts::{TsDemuxer, VIDEO_HEAD_KEPT, VideoAccessUnit};
use xiuload::media::stamp::find_stamp_in_annexb;

fuzz_target!(|data: &[u8]| {
    let (cuts, wire) = xiuload_fuzz::split_input(data);

    let mut whole = TsDemuxer::new();
    whole.push(wire);
    let whole_out = drain(whole);

    let mut cut = TsDemuxer::new();
    for read in cuts.clone().reads(wire) {
        cut.push(read);
    }
    let cut_out = drain(cut);

    assert_eq!(
        cut_out, whole_out,
        "where the reads are cut changed the result"
    );

    let mut heads = TsDemuxer::new().keeping_video_heads(VIDEO_HEAD_KEPT);
    for read in cuts.reads(wire) {
        heads.push(read);
    }
    let heads_out = drain(heads);
    for unit in &heads_out.units {
        assert!(
            unit.data.len() <= VIDEO_HEAD_KEPT,
            "a head longer than kept"
        );
    }
    let expected: Vec<VideoAccessUnit> = whole_out
        .units
        .iter()
        .map(|unit| VideoAccessUnit {
            data: unit.data.slice(..unit.data.len().min(VIDEO_HEAD_KEPT)),
            ..unit.clone()
        })
        .collect();
    assert_eq!(heads_out.units, expected, "heads differ from whole units");
    assert_eq!(heads_out.counters, whole_out.counters);
    assert_eq!(heads_out.pids, whole_out.pids);
});

/// Everything a viewer reads from a demuxer at the end of a segment.
#[derive(Debug, PartialEq)]
struct Outcome {
    units: Vec<VideoAccessUnit>,
    counters: [u64; 6],
    pids: (Option<u16>, Option<u16>),
}

fn drain(mut d: TsDemuxer) -> Outcome {
    d.finish();
    let mut units = Vec::new();
    while let Some(au) = d.next_video_access_unit() {
        let _ = find_stamp_in_annexb(&au.data);
        units.push(au);
    }
    Outcome {
        units,
        counters: [
            d.packets(),
            d.continuity_errors(),
            d.sync_losses(),
            d.dropped_pes(),
            d.audio_pes(),
            d.audio_frames(),
        ],
        pids: (d.video_pid(), d.audio_pid()),
    }
}
