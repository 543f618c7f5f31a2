#pragma once
#define GRAFT_VERSION "0.1.0"
