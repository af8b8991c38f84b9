#include "qatfold/graph/graph.h"

#include <algorithm>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "qatfold/error.h"

namespace qatfold::graph {
namespace {

using program::InputKind;
using program::isConstantKind;

// Ops that only compute their outputs: safe to drop when nothing reads them.
bool isPure(const std::string& target) {
  static const char* const kPurePrefixes[] = {"torch.ops.aten.", "torch.ops.quantized_decomposed."};
  bool known_namespace = std::any_of(std::begin(kPurePrefixes), std::end(kPurePrefixes),
                                     [&](const char* prefix) { return target.rfind(prefix, 0) == 0; });
  if (!known_namespace) return false;
  // In-place and out= variants ("aten.add_.Tensor", "aten.add.out") and asserts mutate or check.
  auto op_start = target.find('.', std::string("torch.ops.").size()) + 1;
  auto op_end = target.find('.', op_start);
  std::string op = target.substr(op_start, op_end == std::string::npos ? std::string::npos : op_end - op_start);
  std::string overload = op_end == std::string::npos ? "" : target.substr(op_end + 1);
  if (!op.empty() && op.back() == '_') return false;
  if (overload == "out" || overload.rfind("out_", 0) == 0) return false;
  if (op.find("assert") != std::string::npos || op.find("constrain") != std::string::npos) return false;
  return true;
}

}  // namespace

// ---- Value and Node ---------------------------------------------------------

std::vector<Node*> Value::users() const {
  std::vector<Node*> distinct;
  for (Node* user : uses_) {
    if (std::find(distinct.begin(), distinct.end(), user) == distinct.end()) distinct.push_back(user);
  }
  return distinct;
}

const Operand* Node::tryGetOperand(std::string_view name) const {
  for (const Operand& operand : operands_) {
    if (operand.name == name) return &operand;
  }
  return nullptr;
}

Value* Node::tryGetInput(std::string_view name) const {
  const Operand* operand = tryGetOperand(name);
  if (operand == nullptr || !operand->argument().is("as_tensor") || operand->values.size() != 1) return nullptr;
  return operand->values[0];
}

Value* Node::getInput(std::string_view name) const {
  Value* value = tryGetInput(name);
  if (value == nullptr) throw Error("node '" + name_ + "' has no tensor input '" + std::string(name) + "'");
  return value;
}

const program::Argument* Node::tryGetArgument(std::string_view name) const {
  const Operand* operand = tryGetOperand(name);
  return operand == nullptr ? nullptr : &operand->argument();
}

std::vector<Value*> Node::inputValues() const {
  std::vector<Value*> values;
  for (const Operand& operand : operands_) {
    for (Value* value : operand.values) {
      if (value != nullptr) values.push_back(value);
    }
  }
  return values;
}

Graph::~Graph() = default;

Value* Graph::newValue(const std::string& name, const program::TensorMeta* read, std::optional<program::TensorMeta> own,
                       std::uint64_t order) {
  auto value = std::make_unique<Value>();
  value->name_ = name;
  value->meta_ = read;
  if (own) {
    value->own_meta_ = std::make_unique<program::TensorMeta>(std::move(*own));
    value->meta_ = value->own_meta_.get();
  }
  value->order_ = order;
  Value* raw = value.get();
  if (!values_by_name_.emplace(raw->name_, raw).second) throw Error("value '" + name + "' is defined twice");
  values_.push_back(std::move(value));
  return raw;
}

std::string Graph::freshName(const std::string& hint) {
  if (values_by_name_.count(hint) == 0) return hint;
  for (std::size_t i = 1;; ++i) {
    std::string candidate = hint + "_" + std::to_string(i);
    if (values_by_name_.count(candidate) == 0) return candidate;
  }
}

// ---- queries ------------------------------------------------------------------

std::vector<Node*> Graph::nodes() const {
  std::vector<Node*> list;
  list.reserve(nodes_.size());
  for (const auto& node : nodes_) list.push_back(node.get());
  return list;
}

std::vector<Value*> Graph::outputs() const {
  std::vector<Value*> list;
  for (const GraphOutput& output : outputs_) list.push_back(output.value);
  return list;
}

Value* Graph::tryGetValue(std::string_view name) const {
  auto it = values_by_name_.find(name);
  return it == values_by_name_.end() ? nullptr : it->second;
}

Value* Graph::getValue(std::string_view name) const {
  Value* value = tryGetValue(name);
  if (value == nullptr) throw Error("graph has no value '" + std::string(name) + "'");
  return value;
}

Value* Graph::tryGetPlaceholderFor(std::string_view fqn) const {
  for (Value* placeholder : placeholders_) {
    if (isConstantKind(placeholder->input_kind_) && placeholder->target_ == fqn) return placeholder;
  }
  return nullptr;
}

// ---- mutation -------------------------------------------------------------------

void Graph::addUse(Value* value, Node* user) { value->uses_.push_back(user); }

void Graph::removeUse(Value* value, Node* user) {
  auto it = std::find(value->uses_.begin(), value->uses_.end(), user);
  if (it == value->uses_.end()) throw Error("internal: use list of '" + value->name_ + "' is out of sync");
  value->uses_.erase(it);
}

void Graph::afterMutation() {
  ++mutations_;
#ifdef QATFOLD_LINT_MUTATIONS
  lint();
#endif
}

void Graph::replaceAllUsesWith(Value* from, Value* to) {
  if (from == to) return;
  for (Node* user : from->users()) {
    for (Operand& operand : user->operands_) {
      for (Value*& value : operand.values) {
        if (value == from) {
          value = to;
          operand.changed = true;
          user->changed_ = true;
          removeUse(from, user);
          addUse(to, user);
        }
      }
    }
  }
  for (GraphOutput& output : outputs_) {
    if (output.value == from) {
      output.value = to;
      --from->output_uses_;
      ++to->output_uses_;
    }
  }
  if (listener_ != nullptr) listener_->replacedAllUses(*from, *to);
  afterMutation();
}

void Graph::setInput(Node* node, std::string_view operand_name, Value* value, std::string_view insert_after) {
  for (Operand& operand : node->operands_) {
    if (operand.name != operand_name) continue;
    for (Value* old : operand.values) {
      if (old != nullptr) removeUse(old, node);
    }
    operand.setArgument(program::Argument::tensor(value->name_));
    operand.changed = true;
    node->changed_ = true;
    operand.values = {value};
    addUse(value, node);
    if (listener_ != nullptr) listener_->setInput(*node, operand.name, *value);
    afterMutation();
    return;
  }
  for (auto it = node->operands_.begin(); !insert_after.empty() && it != node->operands_.end(); ++it) {
    if (it->name != insert_after) continue;
    Operand operand;
    operand.name = std::string(operand_name);
    operand.values = {value};
    operand.changed = true;
    operand.setArgument(program::Argument::tensor(value->name_));
    node->operands_.insert(std::next(it), std::move(operand));
    node->changed_ = true;
    addUse(value, node);
    if (listener_ != nullptr) listener_->setInput(*node, std::string(operand_name), *value);
    afterMutation();
    return;
  }
  throw Error("node '" + node->name_ + "' has no operand '" + std::string(operand_name) + "'");
}

void Graph::setArgument(Node* node, std::string_view operand_name, program::Argument argument) {
  if (argument.refersToTensors())
    throw Error("setArgument: the new value of '" + std::string(operand_name) + "' names tensors");
  for (Operand& operand : node->operands_) {
    if (operand.name != operand_name) continue;
    if (!operand.values.empty()) {
      throw Error("node '" + node->name_ + "': operand '" + operand.name + "' reads tensors, not a constant");
    }
    operand.setArgument(std::move(argument));
    operand.changed = true;
    node->changed_ = true;
    if (listener_ != nullptr) listener_->setArgument(*node, operand.name, operand.argument());
    afterMutation();
    return;
  }
  throw Error("node '" + node->name_ + "' has no operand '" + std::string(operand_name) + "'");
}

Node* Graph::insertNodeBefore(Node* anchor, const NodeSpec& spec) {
  auto node = std::make_unique<Node>();
  Node* raw = node.get();
  node->target_ = spec.target;
  node->metadata_ = spec.metadata;
  node->metadata_source_ = spec.metadata_source;
  for (const NodeSpec::Input& input : spec.inputs) {
    Operand operand;
    operand.name = input.name;
    if (const auto* value = std::get_if<Value*>(&input.value)) {
      operand.setArgument(program::Argument::tensor((*value)->name_));
      operand.values = {*value};
    } else {
      operand.setArgument(std::get<program::Argument>(input.value));
    }
    node->operands_.push_back(std::move(operand));
  }
  std::string name = freshName(spec.name_hint);
  Value* output = newValue(name, nullptr, spec.output_meta, next_order_++);
  output->producer_ = raw;
  node->name_ = name;
  node->outputs_ = {output};
  node->own_outputs_ = {program::Argument::tensor(name)};
  for (Operand& operand : node->operands_) {
    for (Value* value : operand.values) addUse(value, raw);
  }
  auto position = anchor == nullptr ? nodes_.end() : anchor->position_;
  raw->position_ = nodes_.insert(position, std::move(node));
  if (listener_ != nullptr) listener_->insertedNode(*raw, anchor);
  afterMutation();
  return raw;
}

void Graph::eraseNode(Node* node) {
  for (Value* output : node->outputs_) {
    if (output->useCount() != 0) {
      throw Error("cannot erase node '" + node->name_ + "': its output '" + output->name_ + "' is still used");
    }
  }
  if (listener_ != nullptr) listener_->erasingNode(*node);
  for (Operand& operand : node->operands_) {
    for (Value* value : operand.values) {
      if (value != nullptr) removeUse(value, node);
    }
  }
  for (Value* output : node->outputs_) {
    output->alive_ = false;
    output->producer_ = nullptr;
    values_by_name_.erase(output->name_);
  }
  nodes_.erase(node->position_);
  afterMutation();
}

Value* Graph::addConstantTensor(InputKind kind, const std::string& fqn_hint, const std::string& name_hint,
                                program::TensorMeta meta, std::shared_ptr<const Storage> storage) {
  if (!isConstantKind(kind)) throw Error("only parameters, buffers and tensor constants can be added");
  auto& list = kind == InputKind::kTensorConstant ? constants_ : weights_;
  std::string fqn = fqn_hint;
  for (std::size_t i = 1; payload_fqns_.count(fqn) != 0; ++i) fqn = fqn_hint + "_" + std::to_string(i);
  payload_fqns_.insert(fqn);

  auto payload = std::make_shared<Payload>();
  payload->section = kind == InputKind::kTensorConstant ? PayloadSection::kConstants : PayloadSection::kWeights;
  payload->fqn = fqn;
  payload->meta.is_param = kind == InputKind::kParameter;
  payload->meta.use_pickle = false;
  payload->meta.tensor_meta = meta;
  payload->storage = std::move(storage);
  (void)payload->view();  // the bytes must fit the meta
  list.push_back(payload);

  const std::string name = freshName(name_hint);
  Value* value = newValue(name, nullptr, meta, next_order_++);
  value->input_kind_ = kind;
  value->target_ = fqn;
  value->payload_ = payload;
  value->input_argument_ = program::Argument::tensor(name);
  value->spec_ = program::InputSpec::constant(kind, name, fqn);
  value->initially_used_ = true;  // removable once no pass uses it any more

  // After the last placeholder of the same kind, else after the last constant, else first.
  auto insert_at = placeholders_.begin();
  for (auto it = placeholders_.begin(); it != placeholders_.end(); ++it) {
    if ((*it)->input_kind_ == kind) insert_at = std::next(it);
  }
  if (insert_at == placeholders_.begin()) {
    for (auto it = placeholders_.begin(); it != placeholders_.end(); ++it) {
      if (isConstantKind((*it)->input_kind_)) insert_at = std::next(it);
    }
  }
  placeholders_.insert(insert_at, value);
  if (listener_ != nullptr) listener_->addedConstant(*value);
  afterMutation();
  return value;
}

void Graph::replaceTensorData(Value* placeholder, program::TensorMeta meta, std::shared_ptr<const Storage> storage) {
  if (!placeholder->payload_) throw Error("'" + placeholder->name_ + "' is not a constant tensor");
  auto replacement = std::make_shared<Payload>(*placeholder->payload_);
  replacement->meta.changed = true;
  replacement->meta.tensor_meta = meta;
  replacement->meta.use_pickle = false;
  replacement->storage = std::move(storage);
  (void)replacement->view();
  auto& list = replacement->section == PayloadSection::kWeights ? weights_ : constants_;
  for (auto& payload : list) {
    if (payload == placeholder->payload_) payload = replacement;
  }
  placeholder->payload_ = replacement;
  // A float parameter keeps its requires_grad; an integer tensor cannot
  // require gradients (torch refuses to load one that says it does).
  const bool floating = meta.dtype == program::ScalarType::kFloat32 || meta.dtype == program::ScalarType::kFloat64 ||
                        meta.dtype == program::ScalarType::kFloat16 || meta.dtype == program::ScalarType::kBFloat16;
  meta.requires_grad = floating && placeholder->meta_ ? placeholder->meta_->requires_grad : false;
  placeholder->own_meta_ = std::make_unique<program::TensorMeta>(std::move(meta));
  placeholder->meta_ = placeholder->own_meta_.get();
  if (listener_ != nullptr) listener_->replacedTensorData(*placeholder);
  afterMutation();
}

std::size_t Graph::eliminateDeadCode() {
  // One walk from the back suffices: erasing a node only frees earlier ones.
  std::vector<Node*> order = nodes();
  std::size_t removed = 0;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = *it;
    bool dead = !node->outputs_.empty() && !node->has_untracked_outputs_ && isPure(node->target_) &&
                std::all_of(node->outputs_.begin(), node->outputs_.end(),
                            [](const Value* value) { return value->useCount() == 0; });
    if (!dead) continue;
    eraseNode(node);
    ++removed;
  }
  return removed;
}

std::size_t Graph::removeUnusedConstants() {
  std::size_t removed = 0;
  std::vector<Value*> kept;
  // Placeholders holding each payload: one left unheld is dropped.
  std::unordered_map<const Payload*, std::size_t> holders;
  for (const Value* placeholder : placeholders_) {
    if (placeholder->payload_) ++holders[placeholder->payload_.get()];
  }
  std::unordered_set<const Payload*> dropped;
  for (Value* placeholder : placeholders_) {
    bool remove =
        isConstantKind(placeholder->input_kind_) && placeholder->useCount() == 0 && placeholder->initially_used_;
    if (!remove) {
      kept.push_back(placeholder);
      continue;
    }
    ++removed;
    if (listener_ != nullptr) listener_->removingConstant(*placeholder);
    placeholder->alive_ = false;
    values_by_name_.erase(placeholder->name_);
    if (--holders[placeholder->payload_.get()] == 0) {
      dropped.insert(placeholder->payload_.get());
      payload_fqns_.erase(placeholder->payload_->fqn);
    }
  }
  for (auto* list : {&weights_, &constants_}) {
    std::erase_if(*list, [&](const std::shared_ptr<Payload>& payload) { return dropped.count(payload.get()) != 0; });
  }
  placeholders_ = std::move(kept);
  if (removed > 0) afterMutation();
  return removed;
}

// ---- lint -----------------------------------------------------------------------

void Graph::lint() const {
  auto fail = [](const std::string& what) { throw Error("graph lint: " + what); };
  // Values defined so far carry this run's number; uses are counted on them.
  const std::uint64_t run = ++lint_runs_;
  std::size_t defined = 0;
  auto define = [&](const Value* value) {
    value->lint_run_ = run;
    value->lint_uses_ = 0;
    value->lint_outputs_ = 0;
    ++defined;
    // Unique names follow: two values of one name cannot both be indexed under it.
    auto it = values_by_name_.find(value->name_);
    if (it == values_by_name_.end() || it->second != value) fail("'" + value->name_ + "' missing from the name index");
  };
  for (const Value* placeholder : placeholders_) {
    if (!placeholder->alive_) fail("dead placeholder '" + placeholder->name_ + "' still listed");
    if (placeholder->producer_ != nullptr) fail("placeholder '" + placeholder->name_ + "' has a producer");
    if (placeholder->lint_run_ == run) fail("name '" + placeholder->name_ + "' defined twice");
    if (isConstantKind(placeholder->input_kind_) && !placeholder->payload_) {
      fail("constant input '" + placeholder->name_ + "' has no payload");
    }
    if (placeholder->spec_.name != placeholder->name_)
      fail("signature entry of '" + placeholder->name_ + "' names another value");
    define(placeholder);
  }
  for (const auto& node : nodes_) {
    if (node->position_->get() != node.get()) fail("node '" + node->name_ + "' has a stale position");
    for (const Operand& operand : node->operands_) {
      for (const Value* value : operand.values) {
        if (value == nullptr) continue;
        if (!value->alive_) fail("node '" + node->name_ + "' uses erased value '" + value->name_ + "'");
        if (value->lint_run_ != run)
          fail("node '" + node->name_ + "' uses '" + value->name_ + "' before it is defined");
        ++value->lint_uses_;
      }
      if (operand.argument().refersToTensors() && operand.argument().tensorReferenceCount() != operand.values.size()) {
        fail("operand '" + operand.name + "' of '" + node->name_ + "' lost its shape");
      }
    }
    for (const Value* output : node->outputs_) {
      if (output->producer_ != node.get()) fail("output '" + output->name_ + "' does not point back at its node");
      if (output->lint_run_ == run) fail("name '" + output->name_ + "' defined twice");
      define(output);
    }
  }
  for (const GraphOutput& output : outputs_) {
    if (output.value == nullptr) continue;
    if (output.value->lint_run_ != run) fail("graph output '" + output.value->name_ + "' is not defined");
    ++output.value->lint_outputs_;
  }
  for (const auto& value : values_) {
    if (value->lint_run_ != run) continue;
    if (value->lint_uses_ != value->uses_.size()) fail("use list of '" + value->name_ + "' is out of sync");
    if (value->lint_outputs_ != value->output_uses_) fail("output count of '" + value->name_ + "' is out of sync");
  }
  if (values_by_name_.size() != defined) fail("name index holds values that are not in the graph");
}

}  // namespace qatfold::graph
