// Added to every plugin library by graft_add_plugin(): the library's one export.
#include <graft/plugin_export.h>
