// The run report: one self-contained HTML page (opens from disk, no network) of one or
// more run dirs: loss, accuracy, lr and throughput curves per step and per epoch (runs
// overlaid), the confusion matrix as a heat map, per-class accuracy, the most confidently
// misclassified images, checkpoints, the model summary and loading report, the resolved
// recipe, the stop reason, time and speed. Charts are drawn by Chart.js (Debian's
// libjs-chart.js), inlined into the page.
//
// It reads what a run dir holds: recipe.yaml, metrics.jsonl, run.json (the trainer's
// record for the report: status, model, evaluations, checkpoints), report.json.
#pragma once

#include <string>
#include <vector>

namespace graft {

/// The page for `run_dirs` (one or several, overlaid). A dir that is not a run dir is a
/// usage error naming it.
std::string render_report(const std::vector<std::string>& run_dirs);

/// render_report() written to `out` (a temp file renamed into place).
void write_report(const std::vector<std::string>& run_dirs, const std::string& out);

/// The Chart.js file inlined into reports: $GRAFT_CHARTJS, else Debian's
/// /usr/share/javascript/chart.js/chart.min.js. A report written without it says so and
/// shows its tables only.
std::string chartjs_path();

}  // namespace graft
