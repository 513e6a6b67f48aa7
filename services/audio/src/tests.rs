use std::io::Cursor;

use opus::Channels;

use super::*;

fn tone(seconds: f32, rate: u32) -> Vec<f32> {
    let n = (seconds * rate as f32) as usize;
    (0..n)
        .map(|i| 0.5 * (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin())
        .collect()
}

/// Decodes an Ogg Opus file with libopus and applies pre-skip and end trimming, as a
/// player does; returns (pre_skip, samples at 48 kHz).
pub(crate) fn decode(bytes: &[u8]) -> (usize, Vec<f32>) {
    let mut reader = ::ogg::reading::PacketReader::new(Cursor::new(bytes));
    let head = reader.read_packet_expected().unwrap();
    assert_eq!(&head.data[..8], b"OpusHead");
    let pre_skip = u16::from_le_bytes([head.data[10], head.data[11]]) as usize;
    let tags = reader.read_packet_expected().unwrap();
    assert_eq!(&tags.data[..8], b"OpusTags");
    let mut decoder = opus::Decoder::new(OPUS_SAMPLE_RATE, Channels::Mono).unwrap();
    let mut out = Vec::new();
    let mut last_granule = 0;
    let mut saw_end = false;
    while let Some(packet) = reader.read_packet().unwrap() {
        let mut buf = [0f32; 5760];
        let n = decoder.decode_float(&packet.data, &mut buf, false).unwrap();
        out.extend_from_slice(&buf[..n]);
        last_granule = packet.absgp_page();
        saw_end |= packet.last_in_stream();
    }
    assert!(saw_end, "no end-of-stream page");
    out.truncate(last_granule as usize);
    (pre_skip, out.split_off(pre_skip))
}

#[test]
fn ogg_opus_decodes_to_the_input_length() {
    for seconds in [0.01, 0.5, 1.7, 3.0] {
        let input = tone(seconds, 22050);
        let bytes = encode_ogg_opus(&input, 22050, DEFAULT_BITRATE).unwrap();
        let (pre_skip, decoded) = decode(&bytes);
        assert!(pre_skip > 0);
        let expected = (input.len() as f64 * 48000.0 / 22050.0).round() as usize;
        assert_eq!(decoded.len(), expected, "{seconds} s");
    }
}

#[test]
fn streaming_in_uneven_pieces_gives_the_same_length() {
    let input = tone(2.3, 22050);
    let mut encoder = OggOpusEncoder::new(22050, DEFAULT_BITRATE, 7).unwrap();
    let mut rest = &input[..];
    for size in [1usize, 5000, 3, 1023, 1024, 1025, 17_000].iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let n = (*size).min(rest.len());
        encoder.push(&rest[..n]).unwrap();
        rest = &rest[n..];
    }
    let (_, decoded) = decode(&encoder.finish().unwrap());
    assert_eq!(
        decoded.len(),
        (input.len() as f64 * 48000.0 / 22050.0).round() as usize
    );
    // 48 kHz input passes through without resampling.
    let input48 = tone(0.7, 48000);
    let (_, decoded) = decode(&encode_ogg_opus(&input48, 48000, DEFAULT_BITRATE).unwrap());
    assert_eq!(decoded.len(), input48.len());
    // An empty stream is still a valid file.
    let (_, decoded) = decode(&encode_ogg_opus(&[], 22050, DEFAULT_BITRATE).unwrap());
    assert!(decoded.is_empty());
}

#[test]
fn resampling_keeps_time_zero() {
    // A click at 0.5 s stays at 0.5 s after resampling.
    let mut input = vec![0f32; 22050];
    input[11025] = 1.0;
    let out = resample_to_opus_rate(&input, 22050).unwrap();
    let peak = out
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap()
        .0;
    assert!((peak as i64 - 24000).abs() <= 2, "click moved to {peak}");
}

#[test]
fn bitrate_is_honoured() {
    let input = tone(3.0, 22050);
    let low = encode_ogg_opus(&input, 22050, 12_000).unwrap().len();
    let high = encode_ogg_opus(&input, 22050, 48_000).unwrap().len();
    assert!(high > low * 2, "12k: {low} B, 48k: {high} B");
}

#[test]
fn wav_is_16_bit_mono_with_every_sample() {
    let input = tone(0.25, 22050);
    let bytes = encode_wav(&input, 22050);
    let reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
    assert_eq!(reader.spec().channels, 1);
    assert_eq!(reader.spec().sample_rate, 22050);
    assert_eq!(reader.spec().bits_per_sample, 16);
    assert_eq!(reader.len() as usize, input.len());
}

#[test]
fn a_failed_opus_encode_falls_back_to_wav() {
    let input = tone(0.1, 22050);
    let failed = Err(AudioError::Resample("simulated".into()));
    let audio = or_wav(failed, &input, 22050);
    assert_eq!(audio.format, AudioFormat::Wav);
    let reader = hound::WavReader::new(Cursor::new(audio.bytes)).unwrap();
    assert_eq!(reader.len() as usize, input.len());
}

#[test]
fn formats() {
    assert_eq!("wav".parse::<AudioFormat>().unwrap(), AudioFormat::Wav);
    assert_eq!("OGG".parse::<AudioFormat>().unwrap(), AudioFormat::Ogg);
    assert!("mp3".parse::<AudioFormat>().is_err());
}
