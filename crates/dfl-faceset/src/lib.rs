//! The aligned-face file (DFLJPG with its APP15 pickle), faceset.pak, and faceset utilities, compatible with DeepFaceLab.
