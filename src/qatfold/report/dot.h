// Graphviz pictures of a graph: the whole program, or the neighbourhood of
// some nodes (a fold's chains before, its convs after). Render with
//   dot -Tsvg before.dot -o before.svg
#pragma once

#include <string>
#include <vector>

#include "qatfold/graph/graph.h"

namespace qatfold::report {

// The whole graph: inputs (parameters, buffers, user inputs), ops, outputs.
std::string graphToDot(const graph::Graph& graph, const std::string& title);

// Only `centers` and what lies within `up` producer steps and `down` user
// steps of them; cut edges end in a small "..." node.
std::string neighbourhoodToDot(const graph::Graph& graph, const std::vector<const graph::Node*>& centers, int up,
                               int down, const std::string& title);

}  // namespace qatfold::report
