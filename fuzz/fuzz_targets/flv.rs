//! The HTTP-FLV demuxer (`xiuload::flv::demux`), all ways in, on the same bytes:
//! - `push` + `next_event` with the whole input at once;
//! - `feed` (in place) with the input cut into reads as the first byte says;
//! - `feed` keeping only tag heads (what viewers use), cut the same way.
//!
//! Besides not panicking, they must agree: the same tags in the same order (heads: the first
//! bytes of the same tags, with their whole size), the same error, the same count of
//! PreviousTagSize mismatches (the module promises that cuts change nothing); and keeping heads,
//! the demuxer never holds more than one tag header, head and PreviousTagSize.
//! Every tag goes through what a viewer does with it: the video/audio tag header parsers and the
//! stamp search in AVC payloads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xiuload::flv::FlvError;
use xiuload::flv::demux::{FlvDemuxer, FlvEvent, TagKind};
use xiuload::flv::tag::{AudioTagInfo, VideoTagInfo};
use xiuload::media::stamp::find_stamp_in_avcc;

/// The demuxer's tag cap, lowered so the fuzzer reaches `TagTooLarge` with small inputs.
const MAX_TAG: usize = 64 * 1024;

/// The head kept in the third way: small, so that fuzzed tags are often longer.
const HEAD: usize = 16;

fuzz_target!(|data: &[u8]| {
    let (cuts, wire) = xiuload_fuzz::split_input(data);

    // Way 1: owned events from the whole input.
    let mut pushed = FlvDemuxer::with_max_tag_size(MAX_TAG);
    pushed.push(wire);
    let mut pushed_tags = Vec::new();
    let pushed_error = loop {
        match pushed.next_event() {
            Ok(Some(FlvEvent::Tag(t))) => {
                inspect(t.kind, &t.data);
                pushed_tags.push((t.kind, t.timestamp_ms, t.data.to_vec()));
            }
            Ok(Some(FlvEvent::Header { .. })) => {}
            Ok(None) => break None,
            Err(e) => {
                // Sticky: asking again gives the same error.
                assert_eq!(pushed.next_event(), Err(e.clone()));
                break Some(e);
            }
        }
    };

    // Way 2: tags parsed in place from each read, as a viewer does.
    let mut fed = FlvDemuxer::with_max_tag_size(MAX_TAG);
    let mut fed_tags = Vec::new();
    let mut fed_error: Option<FlvError> = None;
    for read in cuts.clone().reads(wire) {
        let result = fed.feed(read, |t| {
            inspect(t.kind, t.data);
            fed_tags.push((t.kind, t.timestamp_ms, t.data.to_vec()));
        });
        if let Err(e) = result {
            fed_error = Some(e);
            break;
        }
        if let Some(missing) = fed.missing_from_tag() {
            assert!(missing <= MAX_TAG + 15, "a tag cannot miss {missing} bytes");
        }
    }

    // Way 3: only tag heads, as a viewer keeps them.
    let mut heads = FlvDemuxer::with_max_tag_size(MAX_TAG).keeping_tag_heads(HEAD);
    let mut head_tags = Vec::new();
    let mut heads_error: Option<FlvError> = None;
    for read in cuts.reads(wire) {
        let result = heads.feed(read, |t| {
            assert_eq!(t.data.len(), t.size.min(HEAD));
            inspect(t.kind, t.data);
            head_tags.push((t.kind, t.timestamp_ms, t.data.to_vec(), t.size));
        });
        assert!(
            heads.buffer_capacity() <= 11 + HEAD + 4,
            "holds {} bytes",
            heads.buffer_capacity()
        );
        if let Err(e) = result {
            heads_error = Some(e);
            break;
        }
    }
    let pushed_heads: Vec<_> = pushed_tags
        .iter()
        .map(|(kind, ts, data)| {
            (
                *kind,
                *ts,
                data[..data.len().min(HEAD)].to_vec(),
                data.len(),
            )
        })
        .collect();
    assert_eq!(
        head_tags, pushed_heads,
        "heads and push disagree on the tags"
    );
    assert!(
        same_error(&heads_error, &pushed_error),
        "heads and push disagree on the error: {heads_error:?} and {pushed_error:?}"
    );
    assert_eq!(
        heads.prev_tag_size_mismatches(),
        pushed.prev_tag_size_mismatches()
    );

    assert_eq!(fed_tags, pushed_tags, "feed and push disagree on the tags");
    assert!(
        same_error(&fed_error, &pushed_error),
        "feed and push disagree on the error: {fed_error:?} and {pushed_error:?}"
    );
    assert_eq!(
        fed.prev_tag_size_mismatches(),
        pushed.prev_tag_size_mismatches()
    );
});

/// Equal errors, except that a bad signature names only the bytes seen when it was caught: a
/// viewer fails on the first byte that cannot start "FLV", so with short reads the signature
/// reported is cut short (padded with zeros).
fn same_error(a: &Option<FlvError>, b: &Option<FlvError>) -> bool {
    match (a, b) {
        (Some(FlvError::BadSignature(x)), Some(FlvError::BadSignature(y))) => {
            let seen = x.iter().zip(y).take_while(|(p, q)| p == q).count();
            x[seen..].iter().all(|&b| b == 0) || y[seen..].iter().all(|&b| b == 0)
        }
        _ => a == b,
    }
}

/// What a viewer does with a tag body (`player::viewer::Viewer::on_flv_video`), plus the audio
/// header parser the RTMP and FLV paths share.
fn inspect(kind: TagKind, body: &[u8]) {
    match kind {
        TagKind::Video if VideoTagInfo::parse(body).is_ok() => {
            let _ = find_stamp_in_avcc(VideoTagInfo::avc_payload(body), 4);
        }
        TagKind::Audio => {
            if let Ok(info) = AudioTagInfo::parse(body) {
                let payload = info.payload(body);
                assert!(payload.len() < body.len());
            }
        }
        _ => {}
    }
}
