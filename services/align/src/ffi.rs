//! pocketsphinx 5's C API (`include/pocketsphinx.h`), loaded at run time from the library
//! `scripts/setup_runtime.sh` builds, and a decoder that frees itself.

use std::ffi::{CStr, CString, c_char, c_double, c_int, c_long, c_void};
use std::path::Path;
use std::ptr;

type Ptr = *mut c_void;

unsafe extern "C" {
    /// libc's, which pocketsphinx's `ckd_calloc` allocates with.
    fn free(p: *mut c_void);
}

/// The functions used from libpocketsphinx.
pub(crate) struct Api {
    config_init: unsafe extern "C" fn(Ptr) -> Ptr,
    config_free: unsafe extern "C" fn(Ptr) -> c_int,
    config_set_str: unsafe extern "C" fn(Ptr, *const c_char, *const c_char) -> Ptr,
    config_set_float: unsafe extern "C" fn(Ptr, *const c_char, c_double) -> Ptr,
    config_set_int: unsafe extern "C" fn(Ptr, *const c_char, c_long) -> Ptr,
    init: unsafe extern "C" fn(Ptr) -> Ptr,
    free: unsafe extern "C" fn(Ptr) -> c_int,
    add_word: unsafe extern "C" fn(Ptr, *const c_char, *const c_char, c_int) -> c_int,
    lookup_word: unsafe extern "C" fn(Ptr, *const c_char) -> *mut c_char,
    set_align_text: unsafe extern "C" fn(Ptr, *const c_char) -> c_int,
    activate_search: unsafe extern "C" fn(Ptr, *const c_char) -> c_int,
    start_utt: unsafe extern "C" fn(Ptr) -> c_int,
    end_utt: unsafe extern "C" fn(Ptr) -> c_int,
    process_raw: unsafe extern "C" fn(Ptr, *const i16, usize, c_int, c_int) -> c_int,
    get_hyp: unsafe extern "C" fn(Ptr, *mut i32) -> *const c_char,
    set_alignment: unsafe extern "C" fn(Ptr, Ptr) -> c_int,
    get_alignment: unsafe extern "C" fn(Ptr) -> Ptr,
    alignment_words: unsafe extern "C" fn(Ptr) -> Ptr,
    iter_name: unsafe extern "C" fn(Ptr) -> *const c_char,
    iter_seg: unsafe extern "C" fn(Ptr, *mut c_int, *mut c_int) -> c_int,
    iter_next: unsafe extern "C" fn(Ptr) -> Ptr,
    iter_children: unsafe extern "C" fn(Ptr) -> Ptr,
    seg_iter: unsafe extern "C" fn(Ptr) -> Ptr,
    seg_next: unsafe extern "C" fn(Ptr) -> Ptr,
    seg_word: unsafe extern "C" fn(Ptr) -> *const c_char,
    seg_frames: unsafe extern "C" fn(Ptr, *mut c_int, *mut c_int),
    seg_prob: unsafe extern "C" fn(Ptr, *mut i32, *mut i32, *mut i32) -> i32,
    get_logmath: unsafe extern "C" fn(Ptr) -> Ptr,
    logmath_exp: unsafe extern "C" fn(Ptr, c_int) -> c_double,
    _library: libloading::Library,
}

impl Api {
    pub(crate) fn load(path: &Path) -> Result<Api, String> {
        // SAFETY: loading pocketsphinx runs no initialisers with preconditions of ours.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the signatures above match pocketsphinx 5.1.1's headers.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e: libloading::Error| format!("{}: {e}", $name))?
            };
        }
        Ok(Api {
            config_init: sym!("ps_config_init"),
            config_free: sym!("ps_config_free"),
            config_set_str: sym!("ps_config_set_str"),
            config_set_float: sym!("ps_config_set_float"),
            config_set_int: sym!("ps_config_set_int"),
            init: sym!("ps_init"),
            free: sym!("ps_free"),
            add_word: sym!("ps_add_word"),
            lookup_word: sym!("ps_lookup_word"),
            set_align_text: sym!("ps_set_align_text"),
            activate_search: sym!("ps_activate_search"),
            start_utt: sym!("ps_start_utt"),
            end_utt: sym!("ps_end_utt"),
            process_raw: sym!("ps_process_raw"),
            get_hyp: sym!("ps_get_hyp"),
            set_alignment: sym!("ps_set_alignment"),
            get_alignment: sym!("ps_get_alignment"),
            alignment_words: sym!("ps_alignment_words"),
            iter_name: sym!("ps_alignment_iter_name"),
            iter_seg: sym!("ps_alignment_iter_seg"),
            iter_next: sym!("ps_alignment_iter_next"),
            iter_children: sym!("ps_alignment_iter_children"),
            seg_iter: sym!("ps_seg_iter"),
            seg_next: sym!("ps_seg_next"),
            seg_word: sym!("ps_seg_word"),
            seg_frames: sym!("ps_seg_frames"),
            seg_prob: sym!("ps_seg_prob"),
            get_logmath: sym!("ps_get_logmath"),
            logmath_exp: sym!("logmath_exp"),
            _library: lib,
        })
    }
}

/// One value of a decoder's configuration.
pub(crate) enum Setting<'a> {
    Str(&'a str),
    /// Unset (e.g. no language model).
    Null,
    Float(f64),
    Int(i64),
}

/// A word or phone and its frames (10 ms each, or the decoder's `frate`): `[start, start + frames)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Segment {
    pub name: String,
    pub start: u32,
    pub frames: u32,
    /// The word's posterior probability, where the search has one (recognition).
    pub probability: Option<f64>,
    /// The phones of a word, from an alignment.
    pub children: Vec<Segment>,
}

/// A pocketsphinx decoder. One thread at a time (it is `Send`, not `Sync`).
pub(crate) struct Decoder<'a> {
    api: &'a Api,
    ps: Ptr,
    /// Its frames per second (the `frate` setting): the unit of every segment's frames.
    frame_rate: u32,
}

// SAFETY: a decoder has no thread affinity; `&mut self` methods keep use exclusive.
unsafe impl Send for Decoder<'_> {}

fn c(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("NUL removed")
}

/// A C string pocketsphinx owns, copied.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
unsafe fn owned(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(api: &'a Api, settings: &[(&str, Setting)]) -> Result<Self, String> {
        // SAFETY: NULL asks for the default argument definitions.
        let config = unsafe { (api.config_init)(ptr::null_mut()) };
        if config.is_null() {
            return Err("ps_config_init failed".into());
        }
        for (name, value) in settings {
            let key = c(name);
            // SAFETY: a live config and valid C strings; the config copies what it keeps.
            let set = unsafe {
                match value {
                    Setting::Str(v) => (api.config_set_str)(config, key.as_ptr(), c(v).as_ptr()),
                    Setting::Null => (api.config_set_str)(config, key.as_ptr(), ptr::null()),
                    Setting::Float(v) => (api.config_set_float)(config, key.as_ptr(), *v),
                    Setting::Int(v) => (api.config_set_int)(config, key.as_ptr(), *v as c_long),
                }
            };
            if set.is_null() && !matches!(value, Setting::Null) {
                // SAFETY: the config is ours.
                unsafe { (api.config_free)(config) };
                return Err(format!("pocketsphinx has no setting {name:?}"));
            }
        }
        // SAFETY: a valid config; the decoder retains it, so ours is released after.
        let ps = unsafe { (api.init)(config) };
        unsafe { (api.config_free)(config) };
        if ps.is_null() {
            return Err("ps_init failed (is the model directory complete?)".into());
        }
        let frame_rate = settings
            .iter()
            .find_map(|(name, value)| match (name, value) {
                (&"frate", Setting::Int(rate)) => u32::try_from(*rate).ok(),
                _ => None,
            })
            .unwrap_or(100);
        Ok(Self {
            api,
            ps,
            frame_rate,
        })
    }

    /// Its frames per second: the unit of every segment's `start` and `frames`.
    pub(crate) fn frame_rate(&self) -> u32 {
        self.frame_rate
    }

    /// Input samples (16 kHz) per frame.
    pub(crate) fn samples_per_frame(&self) -> usize {
        (crate::MODEL_SAMPLE_RATE / self.frame_rate.max(1)) as usize
    }

    /// The pronunciation of `word` in the dictionary (ARPAbet, space-separated), if any.
    pub(crate) fn lookup(&mut self, word: &str) -> Option<String> {
        let w = c(word);
        // SAFETY: a live decoder; the result is calloc'd for us, freed below.
        let p = unsafe { (self.api.lookup_word)(self.ps, w.as_ptr()) };
        let s = unsafe { owned(p) };
        if !p.is_null() {
            unsafe { free(p.cast()) };
        }
        s
    }

    /// Adds `word` with `phones` (ARPAbet, space-separated). False when the dictionary
    /// already has the word or a phone is unknown.
    pub(crate) fn add_word(&mut self, word: &str, phones: &str) -> bool {
        let (w, p) = (c(word), c(phones));
        // SAFETY: a live decoder and valid strings (copied by the dictionary).
        unsafe { (self.api.add_word)(self.ps, w.as_ptr(), p.as_ptr(), 1) >= 0 }
    }

    pub(crate) fn set_align_text(&mut self, words: &str) -> bool {
        let w = c(words);
        // SAFETY: as above.
        unsafe { (self.api.set_align_text)(self.ps, w.as_ptr()) >= 0 }
    }

    /// Back to the decoder's default search (the language model, if configured).
    pub(crate) fn activate_default(&mut self) -> bool {
        // SAFETY: NULL selects the default search.
        unsafe { (self.api.activate_search)(self.ps, ptr::null()) >= 0 }
    }

    /// Decodes one whole utterance. False if the search failed to start or end.
    pub(crate) fn decode(&mut self, samples: &[i16]) -> bool {
        // SAFETY: a live decoder, and `samples` outlives the call.
        unsafe {
            (self.api.start_utt)(self.ps) >= 0
                && (self.api.process_raw)(self.ps, samples.as_ptr(), samples.len(), 0, 1) >= 0
                && (self.api.end_utt)(self.ps) >= 0
        }
    }

    /// Starts an utterance to be fed in pieces ([`Decoder::feed`], then [`Decoder::end`]).
    pub(crate) fn start(&mut self) -> bool {
        // SAFETY: a live decoder.
        unsafe { (self.api.start_utt)(self.ps) >= 0 }
    }

    /// Decodes the next piece of the started utterance; [`Decoder::segments`] and
    /// [`Decoder::hypothesis`] then answer for the audio so far (the best partial path).
    pub(crate) fn feed(&mut self, samples: &[i16]) -> bool {
        // SAFETY: a live decoder, and `samples` outlives the call.
        unsafe { (self.api.process_raw)(self.ps, samples.as_ptr(), samples.len(), 0, 0) >= 0 }
    }

    /// Ends the started utterance.
    pub(crate) fn end(&mut self) -> bool {
        // SAFETY: a live decoder.
        unsafe { (self.api.end_utt)(self.ps) >= 0 }
    }

    /// The best hypothesis of the last decode, if the search reached the end.
    pub(crate) fn hypothesis(&mut self) -> Option<String> {
        let mut score = 0i32;
        // SAFETY: the string is owned by the decoder; copied at once.
        unsafe { owned((self.api.get_hyp)(self.ps, &mut score)) }
    }

    /// Builds a phone alignment of the current hypothesis, to fill in by decoding again.
    pub(crate) fn set_alignment(&mut self) -> bool {
        // SAFETY: NULL: from the current hypothesis.
        unsafe { (self.api.set_alignment)(self.ps, ptr::null_mut()) >= 0 }
    }

    /// The word segmentation of the last decode, with posteriors where there are any.
    pub(crate) fn segments(&mut self) -> Vec<Segment> {
        let mut out = Vec::new();
        // SAFETY: the iterator is walked to its end (which frees it) or freed.
        unsafe {
            let logmath = (self.api.get_logmath)(self.ps);
            let mut seg = (self.api.seg_iter)(self.ps);
            while !seg.is_null() {
                let name = owned((self.api.seg_word)(seg)).unwrap_or_default();
                let (mut sf, mut ef) = (0, 0);
                (self.api.seg_frames)(seg, &mut sf, &mut ef);
                let (mut ascr, mut lscr, mut lback) = (0, 0, 0);
                let post = (self.api.seg_prob)(seg, &mut ascr, &mut lscr, &mut lback);
                // A log posterior of 0 is a probability of 1, not a missing one.
                let probability = (!logmath.is_null())
                    .then(|| (self.api.logmath_exp)(logmath, post).clamp(0.0, 1.0));
                out.push(Segment {
                    name,
                    start: sf.max(0) as u32,
                    frames: (ef - sf + 1).max(0) as u32,
                    probability,
                    children: Vec::new(),
                });
                seg = (self.api.seg_next)(seg);
            }
        }
        out
    }

    /// The words of the last alignment, each with its phones.
    pub(crate) fn alignment(&mut self) -> Vec<Segment> {
        let mut words = Vec::new();
        // SAFETY: the alignment is owned by the decoder; every iterator is walked to its end
        // (which frees it).
        unsafe {
            let al = (self.api.get_alignment)(self.ps);
            if al.is_null() {
                return words;
            }
            let mut word = (self.api.alignment_words)(al);
            while !word.is_null() {
                let mut w = self.entry(word);
                let mut phone = (self.api.iter_children)(word);
                while !phone.is_null() {
                    w.children.push(self.entry(phone));
                    phone = (self.api.iter_next)(phone);
                }
                words.push(w);
                word = (self.api.iter_next)(word);
            }
        }
        words
    }

    /// # Safety
    /// `it` is a live alignment iterator.
    unsafe fn entry(&self, it: Ptr) -> Segment {
        let (mut start, mut frames) = (0, 0);
        unsafe {
            (self.api.iter_seg)(it, &mut start, &mut frames);
            Segment {
                name: owned((self.api.iter_name)(it)).unwrap_or_default(),
                start: start.max(0) as u32,
                frames: frames.max(0) as u32,
                probability: None,
                children: Vec::new(),
            }
        }
    }
}

impl Drop for Decoder<'_> {
    fn drop(&mut self) {
        // SAFETY: ours, freed once.
        unsafe { (self.api.free)(self.ps) };
    }
}
