//! Face geometry of DeepFaceLab: face types, 68-point landmarks, mean-face template, Umeyama, crop matrices, hull masks, pose.
