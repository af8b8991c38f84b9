// See fx_describe.h. One walk over the FX graph: each node's attributes are
// read once, through the C API, and turned straight into the schema's
// structs the archive reader would have made of the same program.
#include "fx_describe.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "qatfold/program/json.h"
#include "qatfold/program/json_text.h"

namespace nb = nanobind;

namespace qatfold::python {

namespace {

using program::Argument;

// Attribute and key names, interned once.
struct Names {
  PyObject* op = PyUnicode_InternFromString("op");
  PyObject* name = PyUnicode_InternFromString("name");
  PyObject* target = PyUnicode_InternFromString("target");
  PyObject* args = PyUnicode_InternFromString("args");
  PyObject* kwargs = PyUnicode_InternFromString("kwargs");
  PyObject* meta = PyUnicode_InternFromString("meta");
  PyObject* users = PyUnicode_InternFromString("users");
  PyObject* val = PyUnicode_InternFromString("val");
  PyObject* nn_module_stack = PyUnicode_InternFromString("nn_module_stack");
  PyObject* dtype = PyUnicode_InternFromString("dtype");
  PyObject* shape = PyUnicode_InternFromString("shape");
  PyObject* stride = PyUnicode_InternFromString("stride");
  PyObject* storage_offset = PyUnicode_InternFromString("storage_offset");
  PyObject* requires_grad = PyUnicode_InternFromString("requires_grad");
  PyObject* schema = PyUnicode_InternFromString("_schema");
  PyObject* arguments = PyUnicode_InternFromString("arguments");
  PyObject* kwarg_only = PyUnicode_InternFromString("kwarg_only");
  PyObject* module = PyUnicode_InternFromString("__module__");
  PyObject* qualname = PyUnicode_InternFromString("__qualname__");
  PyObject* dunder_name = PyUnicode_InternFromString("__name__");
  PyObject* type = PyUnicode_InternFromString("type");
  PyObject* index = PyUnicode_InternFromString("index");
  PyObject* kind = PyUnicode_InternFromString("kind");
  PyObject* graph = PyUnicode_InternFromString("graph");
  PyObject* nodes = PyUnicode_InternFromString("nodes");
  PyObject* graph_module = PyUnicode_InternFromString("graph_module");
  PyObject* graph_signature = PyUnicode_InternFromString("graph_signature");
  PyObject* input_specs = PyUnicode_InternFromString("input_specs");
  PyObject* output_specs = PyUnicode_InternFromString("output_specs");
  PyObject* state_dict = PyUnicode_InternFromString("state_dict");
  PyObject* constants = PyUnicode_InternFromString("constants");
  PyObject* device = PyUnicode_InternFromString("device");
  PyObject* is_quantized = PyUnicode_InternFromString("is_quantized");
  PyObject* layout = PyUnicode_InternFromString("layout");
  PyObject* untyped_storage = PyUnicode_InternFromString("untyped_storage");
  PyObject* data_ptr = PyUnicode_InternFromString("data_ptr");
  PyObject* nbytes = PyUnicode_InternFromString("nbytes");
};

const Names& names() {
  static const Names* interned = new Names();  // lives as long as the interpreter
  return *interned;
}

// nb::python_error if `object` is null (a failed C API call), else owned.
nb::object owned(PyObject* object) {
  if (object == nullptr) throw nb::python_error();
  return nb::steal(object);
}

nb::object attr(nb::handle object, PyObject* name) { return owned(PyObject_GetAttr(object.ptr(), name)); }

nb::object call(nb::handle object, PyObject* method) {
  return owned(PyObject_CallMethodObjArgs(object.ptr(), method, nullptr));
}

std::string_view text(nb::handle string) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(string.ptr(), &size);
  if (data == nullptr) throw nb::python_error();
  return {data, static_cast<std::size_t>(size)};
}

// Calls `visit` with each item of `iterable` (through PyObject_GetIter, which
// every iterable FX object supports).
template <class Visit>
void forEach(nb::handle iterable, Visit&& visit) {
  nb::object iterator = owned(PyObject_GetIter(iterable.ptr()));
  while (true) {
    nb::object item = nb::steal(PyIter_Next(iterator.ptr()));
    if (!item.is_valid()) {
      if (PyErr_Occurred()) throw nb::python_error();
      return;
    }
    visit(nb::handle(item));
  }
}

std::string typeName(nb::handle object) { return Py_TYPE(object.ptr())->tp_name; }

class Describer {
 public:
  explicit Describer(nb::handle context) {
    nb::dict c = nb::borrow<nb::dict>(context);
    node_type_ = c["Node"];
    tensor_type_ = c["Tensor"];
    op_overload_type_ = c["OpOverload"];
    device_type_ = c["device"];
    getitem_ = c["getitem"];
    dtypes_ = c["dtypes"];
    layouts_ = c["layouts"];
    memory_formats_ = c["memory_formats"];
    input_kinds_ = c["input_kinds"];
    output_kinds_ = c["output_kinds"];
    unsupported_ = c["Unsupported"];
    strided_ = c["strided"];
  }

  program::ExportedProgram describe(nb::handle exported_program);
  // The tensors of the program's constant inputs (describe() first).
  void payloads(nb::handle exported_program, FxProgram& into) const;

 private:
  // What a node's uses need to know of it.
  struct Seen {
    std::string name;
    bool tensor = false;  // a tensor value (or a placeholder): as_tensor, else a SymInt
    bool tuple = false;   // returns a tuple/list (getitem users are its outputs)
  };

  // A target's name and, for an OpOverload, its schema's arguments.
  struct Target {
    std::string name;
    bool op_overload = false;
    struct SchemaArgument {
      nb::object key;  // the name as a str, for kwargs lookups
      std::string name;
      bool kwarg_only = false;
    };
    std::vector<SchemaArgument> arguments;
  };

  [[noreturn]] void unsupported(const std::string& why) const {
    PyErr_SetString(unsupported_.ptr(), why.c_str());
    throw nb::python_error();
  }

  bool isTensor(nb::handle value) const {
    return value.is_valid() && PyObject_TypeCheck(value.ptr(), reinterpret_cast<PyTypeObject*>(tensor_type_.ptr()));
  }
  bool isNode(nb::handle value) const {
    return PyObject_TypeCheck(value.ptr(), reinterpret_cast<PyTypeObject*>(node_type_.ptr()));
  }
  // node.meta, or an invalid object if it is not a dict.
  static nb::object meta(nb::handle node) {
    nb::object meta = attr(node, names().meta);
    return PyDict_Check(meta.ptr()) ? meta : nb::object();
  }
  // meta.get("val"), borrowed (invalid if absent).
  static nb::handle val(const nb::object& meta) {
    return meta.is_valid() ? PyDict_GetItemWithError(meta.ptr(), names().val) : nullptr;
  }
  const Seen& seen(nb::handle node) const {
    auto it = seen_.find(node.ptr());
    if (it == seen_.end()) unsupported("a node used before it is defined");
    return it->second;
  }

  // The value of `table[key]` as an int, or nullopt (also for unhashable keys).
  static std::optional<int> code(const nb::dict& table, nb::handle key) {
    PyObject* found = PyDict_GetItemWithError(table.ptr(), key.ptr());
    if (found == nullptr) {
      PyErr_Clear();
      return std::nullopt;
    }
    return static_cast<int>(PyLong_AsLong(found));
  }

  std::optional<std::int64_t> integer(nb::handle value) const {
    if (!PyLong_Check(value.ptr()) || PyBool_Check(value.ptr())) return std::nullopt;
    int overflow = 0;
    const long long result = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
    if (overflow != 0) unsupported("an integer that does not fit 64 bits");
    return result;
  }

  program::TensorMeta tensorMeta(nb::handle tensor) const;
  Argument argument(nb::handle value) const;
  const Target& target(nb::handle target);
  std::vector<program::NamedArgument> inputs(nb::handle node, const Target& target) const;
  std::vector<Argument> outputs(nb::handle node, nb::handle value, const std::string& name,
                                program::Graph& graph) const;
  // meta["nn_module_stack"] as the schema spells it ("key,path,type;..."), or "".
  static std::string moduleStack(const nb::object& meta);

  nb::handle node_type_, tensor_type_, op_overload_type_, device_type_, getitem_, unsupported_, strided_;
  nb::dict dtypes_, layouts_, memory_formats_, input_kinds_, output_kinds_;
  std::unordered_map<PyObject*, Seen> seen_;
  std::unordered_map<PyObject*, Target> targets_;
};

program::TensorMeta Describer::tensorMeta(nb::handle tensor) const {
  program::TensorMeta meta;
  nb::object dtype = attr(tensor, names().dtype);
  const std::optional<int> dtype_code = code(dtypes_, dtype);
  if (!dtype_code) unsupported("a tensor of dtype " + std::string(text(nb::str(dtype))));
  meta.dtype = static_cast<program::ScalarType>(*dtype_code);
  auto read = [&](const nb::object& items, std::vector<std::int64_t>& into) {
    const Py_ssize_t count = PySequence_Fast_GET_SIZE(items.ptr());
    into.reserve(static_cast<std::size_t>(count));
    for (Py_ssize_t i = 0; i < count; ++i) {
      const std::optional<std::int64_t> value = integer(PySequence_Fast_GET_ITEM(items.ptr(), i));
      if (!value) meta.symbolic = true;  // a SymInt
      into.push_back(value.value_or(0));
    }
  };
  nb::object shape = owned(PySequence_Fast(attr(tensor, names().shape).ptr(), "a tensor's shape"));
  read(shape, meta.sizes);
  read(owned(PySequence_Fast(call(tensor, names().stride).ptr(), "a tensor's strides")), meta.strides);
  const std::optional<std::int64_t> offset = integer(call(tensor, names().storage_offset));
  if (!offset) meta.symbolic = true;
  meta.storage_offset = offset.value_or(0);
  meta.requires_grad = attr(tensor, names().requires_grad).is(Py_True);
  if (meta.symbolic) {  // as the archive reader leaves a symbolic meta: each size, a SymInt by its symbol ("s77")
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(shape.ptr()); ++i) {
      PyObject* item = PySequence_Fast_GET_ITEM(shape.ptr(), i);
      const std::optional<std::int64_t> value = integer(item);
      meta.symbolic_sizes.push_back(value);
      meta.size_symbols.push_back(value ? std::string() : std::string(text(nb::str(item))));
    }
    meta.sizes.clear();
    meta.strides.clear();
    meta.storage_offset = 0;
  }
  return meta;
}

Argument Describer::argument(nb::handle value) const {
  PyObject* object = value.ptr();
  if (isNode(value)) {
    const Seen& node = seen(value);
    if (node.tensor) return Argument::tensor(node.name);
    return Argument("as_sym_int", Json{{"as_name", node.name}});
  }
  if (object == Py_None) return Argument::none();
  if (PyBool_Check(object)) return Argument("as_bool", object == Py_True);
  if (auto number = integer(value)) return Argument::integer(*number);
  if (PyFloat_Check(object)) return Argument::real(PyFloat_AS_DOUBLE(object));
  if (PyUnicode_Check(object)) return Argument("as_string", std::string(text(value)));
  if (PyList_Check(object) || PyTuple_Check(object)) {
    nb::object items = owned(PySequence_Fast(object, "a list"));
    const Py_ssize_t count = PySequence_Fast_GET_SIZE(items.ptr());
    auto item = [&](Py_ssize_t i) { return nb::handle(PySequence_Fast_GET_ITEM(items.ptr(), i)); };
    std::size_t nodes = 0, nones = 0, bools = 0, ints = 0, floats = 0;
    for (Py_ssize_t i = 0; i < count; ++i) {
      PyObject* entry = item(i).ptr();
      if (isNode(item(i))) ++nodes;
      else if (entry == Py_None) ++nones;
      else if (PyBool_Check(entry)) ++bools;
      else if (PyLong_Check(entry)) ++ints;
      else if (PyFloat_Check(entry)) ++floats;
    }
    const auto n = static_cast<std::size_t>(count);
    if (nodes > 0) {
      Json list = Json::array();
      if (nodes == n) {
        for (Py_ssize_t i = 0; i < count; ++i) list.push_back(Json{{"name", seen(item(i)).name}});
        return Argument("as_tensors", std::move(list));
      }
      if (nodes + nones == n) {
        for (Py_ssize_t i = 0; i < count; ++i) {
          if (item(i).is_none()) list.push_back(Json{{"as_none", true}});
          else list.push_back(Json{{"as_tensor", Json{{"name", seen(item(i)).name}}}});
        }
        return Argument("as_optional_tensors", std::move(list));
      }
      if (nodes + ints == n) {
        for (Py_ssize_t i = 0; i < count; ++i) {
          if (isNode(item(i))) {
            const Seen& node = seen(item(i));
            if (node.tensor) unsupported("a list of sizes holding the tensor '" + node.name + "'");
            list.push_back(Json{{"as_name", node.name}});
          } else {
            list.push_back(Json{{"as_int", *integer(item(i))}});
          }
        }
        return Argument("as_sym_ints", std::move(list));
      }
    } else if (bools == n && n > 0) {
      Json list = Json::array();
      for (Py_ssize_t i = 0; i < count; ++i) list.push_back(item(i).is(Py_True));
      return Argument("as_bools", std::move(list));
    } else if (ints == n) {
      std::vector<std::int64_t> list;
      for (Py_ssize_t i = 0; i < count; ++i) list.push_back(*integer(item(i)));
      return Argument::integers(list);
    } else if (ints + floats == n) {
      Json list = Json::array();
      for (Py_ssize_t i = 0; i < count; ++i) list.push_back(floatToJson(PyFloat_AsDouble(item(i).ptr())));
      return Argument("as_floats", std::move(list));
    }
    unsupported("a list argument of mixed kinds");
  }
  if (auto dtype = code(dtypes_, value)) return Argument::scalarType(static_cast<program::ScalarType>(*dtype));
  if (auto layout = code(layouts_, value)) return Argument("as_layout", *layout);
  if (auto format = code(memory_formats_, value)) return Argument("as_memory_format", *format);
  if (PyObject_TypeCheck(object, reinterpret_cast<PyTypeObject*>(device_type_.ptr()))) {
    nb::object index = attr(value, names().index);
    return Argument("as_device", Json{{"type", std::string(text(attr(value, names().type)))},
                                      {"index", index.is_none() ? Json(nullptr) : Json(*integer(index))}});
  }
  unsupported("an argument of type " + typeName(value));
}

const Describer::Target& Describer::target(nb::handle target) {
  auto it = targets_.find(target.ptr());
  if (it != targets_.end()) return it->second;
  Target info;
  if (PyObject_TypeCheck(target.ptr(), reinterpret_cast<PyTypeObject*>(op_overload_type_.ptr()))) {
    info.op_overload = true;
    info.name = "torch.ops." + std::string(text(nb::str(target)));
    nb::object arguments = attr(attr(target, names().schema), names().arguments);
    forEach(arguments, [&](nb::handle schema_argument) {
      nb::object key = attr(schema_argument, names().name);
      std::string name(text(key));
      info.arguments.push_back({key, std::move(name), attr(schema_argument, names().kwarg_only).is(Py_True)});
    });
  } else {
    // Any other callable, by module and name.
    nb::object module = nb::steal(PyObject_GetAttr(target.ptr(), names().module));
    if (!module.is_valid()) PyErr_Clear();
    nb::object name = nb::steal(PyObject_GetAttr(target.ptr(), names().dunder_name));
    if (!name.is_valid()) {
      PyErr_Clear();
      name = nb::str(target);
    }
    info.name = (module.is_valid() && PyUnicode_Check(module.ptr()) ? std::string(text(module)) : std::string()) + "." +
                std::string(text(nb::str(name)));
  }
  return targets_.emplace(target.ptr(), std::move(info)).first->second;
}

std::vector<program::NamedArgument> Describer::inputs(nb::handle node, const Target& target) const {
  nb::object args = attr(node, names().args);
  nb::object kwargs = attr(node, names().kwargs);
  const Py_ssize_t positional = PyTuple_Size(args.ptr());
  std::vector<program::NamedArgument> named;
  if (target.op_overload) {
    named.reserve(target.arguments.size());
    for (std::size_t index = 0; index < target.arguments.size(); ++index) {
      const Target::SchemaArgument& schema_argument = target.arguments[index];
      nb::handle value;
      if (!schema_argument.kwarg_only && static_cast<Py_ssize_t>(index) < positional) {
        value = PyTuple_GET_ITEM(args.ptr(), static_cast<Py_ssize_t>(index));
      } else {
        value = PyDict_GetItemWithError(kwargs.ptr(), schema_argument.key.ptr());
        if (!value.is_valid()) {
          if (PyErr_Occurred()) throw nb::python_error();
          continue;  // left at its default
        }
      }
      named.push_back({schema_argument.name, argument(value), {}, false, schema_argument.kwarg_only});
    }
    return named;
  }
  // Its arguments in order, so that every value it reads is a use the passes see.
  std::size_t i = 0;
  for (Py_ssize_t k = 0; k < positional; ++k) {
    named.push_back({"arg" + std::to_string(i++), argument(PyTuple_GET_ITEM(args.ptr(), k)), {}, false});
  }
  PyObject *key = nullptr, *value = nullptr;
  Py_ssize_t position = 0;
  while (PyDict_Next(kwargs.ptr(), &position, &key, &value)) {
    named.push_back({"arg" + std::to_string(i++), argument(value), {}, false});
  }
  return named;
}

std::vector<Argument> Describer::outputs(nb::handle node, nb::handle value, const std::string& name,
                                         program::Graph& graph) const {
  if (isTensor(value)) {
    graph.tensor_values.emplace_back(name, tensorMeta(value));
    return {Argument::tensor(name)};
  }
  if (value.is_valid() && (PyList_Check(value.ptr()) || PyTuple_Check(value.ptr()))) {
    // Each item is named by the getitem node that reads it.
    std::unordered_map<std::int64_t, std::string> getitems;
    forEach(attr(node, names().users), [&](nb::handle user) {
      if (!attr(user, names().target).is(getitem_)) return;
      nb::object user_args = attr(user, names().args);
      if (PyTuple_Size(user_args.ptr()) < 2) return;
      if (auto index = integer(PyTuple_GET_ITEM(user_args.ptr(), 1))) {
        getitems.emplace(*index, std::string(text(attr(user, names().name))));
      }
    });
    std::vector<Argument> outputs;
    nb::object items = owned(PySequence_Fast(value.ptr(), "a node's values"));
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(items.ptr()); ++i) {
      nb::handle item = PySequence_Fast_GET_ITEM(items.ptr(), i);
      if (!isTensor(item)) unsupported("'" + name + "' returns a " + typeName(item));
      auto found = getitems.find(i);
      std::string item_name = found != getitems.end() ? found->second : name + "_unused_" + std::to_string(i);
      graph.tensor_values.emplace_back(item_name, tensorMeta(item));
      outputs.push_back(Argument::tensor(item_name));
    }
    return outputs;
  }
  if (!value.is_valid() || value.is_none()) return {Argument::none()};
  return {Argument("as_sym_int", Json{{"as_name", name}})};
}

std::string Describer::moduleStack(const nb::object& meta) {
  if (!meta.is_valid()) return {};
  PyObject* stack = PyDict_GetItemWithError(meta.ptr(), names().nn_module_stack);
  if (stack == nullptr || !PyDict_Check(stack)) {
    PyErr_Clear();
    return {};
  }
  std::string joined;
  PyObject *key = nullptr, *entry = nullptr;
  Py_ssize_t position = 0;
  while (PyDict_Next(stack, &position, &key, &entry)) {
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 || !PyUnicode_Check(key)) continue;
    nb::handle path = PyTuple_GET_ITEM(entry, 0), kind = PyTuple_GET_ITEM(entry, 1);
    if (!joined.empty()) joined += ';';
    joined += text(key);
    joined += ',';
    joined += text(nb::str(path));
    joined += ',';
    if (PyUnicode_Check(kind.ptr())) {
      joined += text(kind);
    } else {
      joined += text(nb::str(attr(kind, names().module)));
      joined += '.';
      joined += text(nb::str(attr(kind, names().qualname)));
    }
  }
  return joined;
}

program::ExportedProgram Describer::describe(nb::handle exported_program) {
  program::ExportedProgram out;
  out.schema_major = program::kSchemaMajorVersion;
  program::Graph& graph = out.graph;
  nb::object signature = attr(exported_program, names().graph_signature);
  nb::object fx_graph = attr(attr(exported_program, names().graph_module), names().graph);

  std::vector<nb::object> placeholders, calls;
  nb::object output_node;
  forEach(attr(fx_graph, names().nodes), [&](nb::handle node) {
    nb::object op_name = attr(node, names().op);
    const std::string_view op = text(op_name);
    if (op == "placeholder") placeholders.push_back(nb::borrow(node));
    else if (op == "call_function") calls.push_back(nb::borrow(node));
    else if (op == "output") output_node = nb::borrow(node);
    else unsupported("a node of op '" + std::string(op) + "'");
  });

  // Inputs, with their signature entries.
  nb::object input_specs = attr(signature, names().input_specs);
  if (static_cast<std::size_t>(nb::len(input_specs)) != placeholders.size()) {
    unsupported("the graph's placeholders and its signature disagree");
  }
  std::size_t i = 0;
  forEach(input_specs, [&](nb::handle spec) {
    nb::handle node = placeholders[i++];
    std::string name(text(attr(node, names().name)));
    nb::object kind = attr(spec, names().kind);
    PyObject* kind_name = PyDict_GetItemWithError(input_kinds_.ptr(), kind.ptr());
    const std::optional<program::InputKind> input_kind =
        kind_name != nullptr ? program::parseInputKind(text(kind_name)) : std::nullopt;
    if (!input_kind) unsupported("an input of kind " + std::string(text(nb::str(kind))));
    nb::handle value = val(meta(node));
    if (!isTensor(value)) unsupported("input '" + name + "' is not a tensor");
    program::InputSpec input;
    input.name = name;
    input.kind = *input_kind;
    if (program::isConstantKind(input.kind)) input.target = std::string(text(attr(spec, names().target)));
    graph.tensor_values.emplace_back(name, tensorMeta(value));
    graph.inputs.push_back(Argument::tensor(name));
    out.signature.input_specs.push_back(std::move(input));
    seen_.emplace(node.ptr(), Seen{std::move(name), true, false});
  });

  // Nodes. Their metadata (the module stack) is written into one text the
  // program keeps, and sliced once it no longer grows.
  std::string metadata_text;
  std::vector<std::pair<std::size_t, std::size_t>> metadata_spans;  // per node; empty for none
  graph.nodes.reserve(calls.size());
  for (const nb::object& node : calls) {
    nb::object fx_target = attr(node, names().target);
    std::string name(text(attr(node, names().name)));
    const nb::object node_meta = meta(node);
    nb::handle value = val(node_meta);
    if (fx_target.is(getitem_)) {
      nb::object args = attr(node, names().args);
      auto producer = seen_.find(PyTuple_Size(args.ptr()) > 0 ? PyTuple_GET_ITEM(args.ptr(), 0) : nullptr);
      if (producer != seen_.end() && producer->second.tuple) {
        // An output of its producer (see outputs()).
        seen_.emplace(node.ptr(), Seen{std::move(name), isTensor(value), false});
        continue;
      }
    }
    const Target& info = target(fx_target);
    program::Node described;
    described.target = info.name;
    described.inputs = inputs(node, info);
    described.outputs = outputs(node, value, name, graph);
    described.name = name;
    const std::string stack = moduleStack(node_meta);
    if (stack.empty()) {
      metadata_spans.emplace_back(0, 0);
    } else {
      const std::size_t begin = metadata_text.size();
      metadata_text += "{\"nn_module_stack\": ";
      appendJsonString(metadata_text, stack);
      metadata_text += '}';
      metadata_spans.emplace_back(begin, metadata_text.size() - begin);
    }
    const bool tuple = value.is_valid() && (PyList_Check(value.ptr()) || PyTuple_Check(value.ptr()));
    seen_.emplace(node.ptr(), Seen{std::move(name), isTensor(value), tuple});
    graph.nodes.push_back(std::move(described));
  }
  out.text = JsonText::parse(std::move(metadata_text));
  for (std::size_t n = 0; n < graph.nodes.size(); ++n) {
    const auto [begin, size] = metadata_spans[n];
    if (size != 0) graph.nodes[n].metadata.source = out.text->view().substr(begin, size);
  }

  // Outputs, with their signature entries.
  if (!output_node.is_valid()) unsupported("a graph without an output node");
  nb::object output_args = attr(output_node, names().args);
  nb::object returned = owned(PySequence_Fast(PyTuple_GetItem(output_args.ptr(), 0), "the graph's outputs"));
  nb::object output_specs = attr(signature, names().output_specs);
  if (nb::len(output_specs) != static_cast<std::size_t>(PySequence_Fast_GET_SIZE(returned.ptr()))) {
    unsupported("the graph's outputs and its signature disagree");
  }
  i = 0;
  forEach(output_specs, [&](nb::handle spec) {
    Argument returned_value = argument(PySequence_Fast_GET_ITEM(returned.ptr(), static_cast<Py_ssize_t>(i++)));
    nb::object kind = attr(spec, names().kind);
    PyObject* kind_name = PyDict_GetItemWithError(output_kinds_.ptr(), kind.ptr());
    if (kind_name == nullptr || (text(kind_name) == "buffer_mutation" && !returned_value.is("as_tensor"))) {
      unsupported("an output of kind " + std::string(text(nb::str(kind))));
    }
    program::OutputSpec output;
    output.kind = std::string(text(kind_name));
    output.arg = returned_value;
    out.signature.output_specs.push_back(std::move(output));
    graph.outputs.push_back(std::move(returned_value));
  });
  return out;
}

void Describer::payloads(nb::handle exported_program, FxProgram& into) const {
  nb::object state_dict = attr(exported_program, names().state_dict);
  nb::object constants = attr(exported_program, names().constants);
  for (const program::InputSpec& spec : into.exported.signature.input_specs) {
    if (!program::isConstantKind(spec.kind)) continue;
    nb::object key = nb::str(spec.target.c_str());
    // A lifted constant lives in constants, unless the state_dict has it too.
    PyObject* tensor = PyDict_GetItemWithError(state_dict.ptr(), key.ptr());
    const bool constant = tensor == nullptr;
    if (constant) tensor = PyObject_GetItem(constants.ptr(), key.ptr());
    else Py_INCREF(tensor);
    if (tensor == nullptr) {
      PyErr_Clear();
      unsupported("'" + spec.target + "' has no tensor");
    }
    nb::object held = nb::steal(tensor);
    if (!isTensor(held)) unsupported("'" + spec.target + "' is not a tensor");
    if (text(attr(attr(held, names().device), names().type)) != "cpu" || attr(held, names().is_quantized).is(Py_True) ||
        !attr(held, names().layout).is(strided_)) {
      unsupported("'" + spec.target + "' is not a dense CPU tensor");
    }
    BorrowedPayload payload;
    payload.fqn = spec.target;
    payload.constant = constant;
    payload.is_param = spec.kind == program::InputKind::kParameter;
    payload.meta = tensorMeta(held);
    if (payload.meta.symbolic) unsupported("'" + spec.target + "' has a symbolic shape");
    // The storage's bytes, read where they are; the storage is kept alive.
    nb::object storage = call(held, names().untyped_storage);
    const std::optional<std::int64_t> address = integer(call(storage, names().data_ptr));
    const std::optional<std::int64_t> size = integer(call(storage, names().nbytes));
    if (!address || !size || *size < 0) unsupported("'" + spec.target + "' has no readable storage");
    payload.data = reinterpret_cast<const char*>(static_cast<std::uintptr_t>(*address));
    payload.size = static_cast<std::uint64_t>(*size);
    into.storages.append(storage);
    into.payloads.push_back(std::move(payload));
  }
}

}  // namespace

FxProgram describeFxProgram(nb::handle program, nb::handle context) {
  Describer describer(context);
  FxProgram described;
  described.exported = describer.describe(program);
  describer.payloads(program, described);
  return described;
}

}  // namespace qatfold::python
