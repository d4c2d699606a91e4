//! DFL's video steps (extract frames, cut, denoise, build) over the system ffmpeg through process pipes.
