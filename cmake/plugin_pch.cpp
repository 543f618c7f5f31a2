// The translation unit that builds a plugin project's precompiled LibTorch header
// (graft_add_plugin, GraftPlugin.cmake).
