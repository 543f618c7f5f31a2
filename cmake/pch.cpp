// The translation unit that builds the precompiled LibTorch header.
