// graft launch (launch.cpp): the ranks of a multi-process run on this node.
#pragma once

#include <string>
#include <vector>

namespace graft::cli {

struct LaunchArgs {
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master;        ///< ADDR:PORT of node 0; "" = 127.0.0.1 and a free port (one node)
  int max_restarts = 0;
  int rdzv_timeout = 60;     ///< seconds to reach the master and meet every rank
  int timeout = 1800;        ///< seconds a collective may wait
  int grace_seconds = 30;    ///< after SIGTERM to the ranks of a failed group, then SIGKILL
  std::vector<std::string> command;  ///< after "--": train RECIPE [--set ...]
};

int cmd_launch(const LaunchArgs& args);

}  // namespace graft::cli
