//! Voice transcoding (AMR-NB, SILK v3 → MP3). Being written.
