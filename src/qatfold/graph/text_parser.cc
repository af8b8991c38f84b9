// The text parser (graph/text.h): builds the program a text graph describes,
// as a front end builds one from its own objects.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <type_traits>

#include "qatfold/archive/byte_io.h"
#include "qatfold/error.h"
#include "qatfold/graph/text.h"
#include "qatfold/graph/text_syntax.h"
#include "qatfold/program/json.h"
#include "qatfold/program/json_text.h"
#include "qatfold/program/payload.h"

namespace qatfold::graph {

using program::Argument;
using program::ScalarType;
using text_syntax::isFloatingType;
using text_syntax::kOpsPrefix;
using text_syntax::scalarTypeNamed;

namespace {

class TextParser {
 public:
  explicit TextParser(std::string_view text) : text_(text) {}

  [[noreturn]] void fail(const std::string& what) const { throw Error("line " + std::to_string(line_) + ": " + what); }

  void skipSpace() {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '\n') {
        ++line_;
        ++pos_;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }
  bool atEnd() {
    skipSpace();
    return pos_ >= text_.size();
  }
  char peek() {
    skipSpace();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }
  bool accept(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c, const std::string& what) {
    if (!accept(c)) fail(std::string("expected '") + c + "' " + what + ", found " + found());
  }
  std::string found() {
    if (atEnd()) return "the end of the text";
    std::size_t end = pos_;
    while (end < text_.size() && end - pos_ < 20 && text_[end] != '\n') ++end;
    return "'" + std::string(text_.substr(pos_, end - pos_)) + "'";
  }

  static bool isWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; }
  // An identifier, possibly dotted ("aten.conv2d.default"); empty if none.
  std::string word() {
    skipSpace();
    std::size_t end = pos_;
    while (end < text_.size() && isWordChar(text_[end])) ++end;
    std::string out(text_.substr(pos_, end - pos_));
    pos_ = end;
    return out;
  }
  std::string valueName() {
    expect('%', "before a value name");
    std::string name;
    while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) {
      name += text_[pos_++];
    }
    if (name.empty()) fail("expected a value name after '%'");
    return name;
  }
  std::string stringLiteral() {
    skipSpace();
    if (peek() != '"') fail("expected a string, found " + found());
    std::size_t end = pos_ + 1;
    while (end < text_.size() && text_[end] != '"') end += text_[end] == '\\' ? 2 : 1;
    if (end >= text_.size()) fail("unterminated string");
    const std::string_view literal = text_.substr(pos_, end + 1 - pos_);
    pos_ = end + 1;
    try {
      return parseJson(literal).get<std::string>();
    } catch (const Error& e) {
      fail(std::string("bad string: ") + e.what());
    }
  }
  // A number token: its text, and whether it is written as a float.
  std::pair<std::string, bool> numberToken() {
    skipSpace();
    std::size_t end = pos_;
    bool is_float = false;
    if (end < text_.size() && (text_[end] == '-' || text_[end] == '+')) ++end;
    while (end < text_.size()) {
      const char c = text_[end];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        ++end;
      } else if (c == '.' || c == 'e' || c == 'E') {
        is_float = true;
        ++end;
        if ((c == 'e' || c == 'E') && end < text_.size() && (text_[end] == '-' || text_[end] == '+')) ++end;
      } else {
        break;
      }
    }
    std::string token(text_.substr(pos_, end - pos_));
    if (token.empty() || token == "-" || token == "+") fail("expected a number, found " + found());
    pos_ = end;
    return {token, is_float};
  }
  // An integer, or None (a bound that is not there): as JSON.
  Json optionalInteger() {
    skipSpace();
    if (text_.substr(pos_, 4) == "None") {
      pos_ += 4;
      return nullptr;
    }
    auto [token, is_float] = numberToken();
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(token.data(), token.data() + token.size(), value);
    if (is_float || error != std::errc() || end != token.data() + token.size()) fail("bad integer '" + token + "'");
    return value;
  }
  double number() {
    auto [token, is_float] = numberToken();
    (void)is_float;
    return toDouble(token);
  }
  double toDouble(const std::string& token) {
    char* end = nullptr;
    const double value = std::strtod(token.c_str(), &end);
    if (end != token.c_str() + token.size()) fail("bad number '" + token + "'");
    return value;
  }
  std::int64_t toInt(const std::string& token) {
    std::int64_t value = 0;
    const char* begin = token.c_str() + (token[0] == '+');
    auto [ptr, ec] = std::from_chars(begin, token.c_str() + token.size(), value);
    if (ec != std::errc() || ptr != token.c_str() + token.size()) fail("bad integer '" + token + "'");
    return value;
  }

  // dtype[sizes]; a size written as a name ("s77") or '?' (unnamed) is
  // symbolic, and prints back as written.
  struct TensorType {
    program::TensorMeta meta;
    std::vector<std::string> symbols;  // per dimension; empty for a concrete size
    Json json() const {
      std::string text;
      meta.write(text);
      Json out = parseJson(text);
      if (std::all_of(symbols.begin(), symbols.end(), [](const std::string& s) { return s.empty(); })) return out;
      auto expression = [](const std::string& text) {
        return Json{{"as_expr", Json{{"expr_str", text}, {"hint", nullptr}}}};
      };
      // Contiguous strides: each the product of the sizes after it, written
      // as torch writes a product of a number and symbols ("8*s53").
      std::int64_t number = 1;
      std::string product;
      for (std::size_t i = symbols.size(); i-- > 0;) {
        if (!symbols[i].empty()) out["sizes"][i] = expression(symbols[i]);
        if (!product.empty()) {
          out["strides"][i] = expression(number == 1 ? product : std::to_string(number) + "*" + product);
        }
        if (symbols[i].empty()) {
          number *= meta.sizes[i];
        } else {
          product = product.empty() ? symbols[i] : symbols[i] + "*" + product;
        }
      }
      return out;
    }
  };
  TensorType tensorType() {
    const std::string dtype_name = word();
    auto dtype = scalarTypeNamed(dtype_name);
    if (!dtype) fail("unknown dtype '" + dtype_name + "'");
    expect('[', "after the dtype");
    std::vector<std::int64_t> sizes;
    std::vector<std::string> symbols;
    if (!accept(']')) {
      do {
        const char c = peek();
        if (c == '?' || std::isalpha(static_cast<unsigned char>(c))) {
          const std::string name = c == '?' ? (++pos_, std::string("?")) : word();
          sizes.push_back(1);
          symbols.push_back(name);
          continue;
        }
        auto [token, is_float] = numberToken();
        if (is_float) fail("a size must be an integer");
        sizes.push_back(toInt(token));
        symbols.emplace_back();
      } while (accept(','));
      expect(']', "after the sizes");
    }
    return {program::TensorMeta::contiguous(*dtype, sizes), symbols};
  }

  // A JSON object spelled inline: from '{' to its matching '}'.
  Json jsonObject() {
    skipSpace();
    if (peek() != '{') fail("expected '{' after json");
    const std::size_t begin = pos_;
    int depth = 0;
    bool in_string = false;
    for (; pos_ < text_.size(); ++pos_) {
      const char c = text_[pos_];
      if (c == '\n') ++line_;
      if (in_string) {
        if (c == '\\') ++pos_;
        else if (c == '"') in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        ++pos_;
        try {
          return parseJson(text_.substr(begin, pos_ - begin));
        } catch (const Error& e) {
          fail(e.what());
        }
      }
    }
    fail("unterminated json{...}");
  }

  // One argument; its kind follows from its spelling (see text.h).
  Argument argument() {
    const char c = peek();
    if (c == '%') return Argument::tensor(valueName());
    if (c == '"') return Argument("as_string", stringLiteral());
    if (c == '?') {
      ++pos_;
      expect('[', "after '?'");
      Json items = Json::array();
      do {
        if (peek() == '%') {
          items.push_back(Json{{"as_tensor", Json{{"name", valueName()}}}});
        } else if (word() == "None") {
          items.push_back(Json{{"as_none", true}});
        } else {
          fail("an optional tensor list holds %values and None");
        }
      } while (accept(','));
      expect(']', "after an optional tensor list");
      return Argument("as_optional_tensors", items);
    }
    if (c == '[') return listArgument();
    if (c == '-' || c == '+' || std::isdigit(static_cast<unsigned char>(c))) {
      auto [token, is_float] = numberToken();
      return is_float ? Argument::real(toDouble(token)) : Argument::integer(toInt(token));
    }
    const std::string name = word();
    if (name == "None") return Argument::none();
    if (name == "True" || name == "False") return Argument("as_bool", name == "True");
    if (name == "json") {
      Json object = jsonObject();
      if (!object.is_object() || object.size() != 1) fail("json{...} must hold one member, the argument's kind");
      return Argument(object.begin().key(), object.begin().value());
    }
    if (auto dtype = scalarTypeNamed(name)) return Argument::scalarType(*dtype);
    fail(name.empty() ? "expected an argument, found " + found() : "unknown argument '" + name + "'");
  }

  Argument listArgument() {
    expect('[', "");
    if (peek() == ']') fail("write an empty list as json{...}: its kind is ambiguous");
    if (peek() == '%') {
      Json items = Json::array();
      do items.push_back(Json{{"name", valueName()}});
      while (accept(','));
      expect(']', "after a tensor list");
      return Argument("as_tensors", items);
    }
    if (peek() == 'T' || peek() == 'F') {
      Json items = Json::array();
      do {
        const std::string name = word();
        if (name != "True" && name != "False") fail("a bool list holds True and False");
        items.push_back(name == "True");
      } while (accept(','));
      expect(']', "after a bool list");
      return Argument("as_bools", items);
    }
    std::vector<std::pair<std::string, bool>> tokens;
    do tokens.push_back(numberToken());
    while (accept(','));
    expect(']', "after a number list");
    bool any_float = false;
    for (const auto& token : tokens) any_float = any_float || token.second;
    Json items = Json::array();
    for (const auto& [token, is_float] : tokens) {
      if (any_float) items.push_back(floatToJson(toDouble(token)));
      else items.push_back(toInt(token));
    }
    return Argument(any_float ? "as_floats" : "as_ints", items);
  }

  // One element of a constant's data: a number, or nan / inf / -inf.
  std::string dataToken() {
    skipSpace();
    for (const char* special : {"nan", "inf", "-inf"}) {
      const std::string_view word(special);
      if (text_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return std::string(word);
      }
    }
    return numberToken().first;
  }

  // A constant's data: [v, ...] or fill(v). Without either (the printer
  // elides large tensors) it is `fill_elided`'s value where the caller gave
  // one, else an error: elided weights are never silently made up.
  std::vector<std::string> data(std::int64_t count, const std::string& value_name,
                                const std::optional<std::string>& fill_elided) {
    std::vector<std::string> values(static_cast<std::size_t>(count), fill_elided.value_or("0"));
    if (!accept('=')) {
      if (!fill_elided) {
        fail("'%" + value_name + "' has no data (the text elides tensors of over " + std::to_string(kPrintedElements) +
             " elements): write it as [v, ...] or fill(v), or assemble with --fill-elided V");
      }
      return values;
    }
    if (accept('[')) {
      std::vector<std::string> listed;
      if (!accept(']')) {
        do listed.push_back(dataToken());
        while (accept(','));
        expect(']', "after the data");
      }
      if (static_cast<std::int64_t>(listed.size()) != count) {
        fail("the data has " + std::to_string(listed.size()) + " elements for a tensor of " + std::to_string(count));
      }
      return listed;
    }
    if (word() != "fill") fail("constant data is [v, ...] or fill(v)");
    expect('(', "after fill");
    const std::string value = dataToken();
    expect(')', "after the fill value");
    values.assign(values.size(), value);
    return values;
  }

  // The bytes of `tokens` as elements of `type`.
  std::string encode(ScalarType type, const std::vector<std::string>& tokens) {
    auto convert = [&](auto element) {
      using T = decltype(element);
      std::vector<T> typed;
      typed.reserve(tokens.size());
      for (const std::string& token : tokens) {
        if constexpr (std::is_same_v<T, float>) {
          typed.push_back(std::strtof(token.c_str(), nullptr));  // directly: no double rounding
        } else if constexpr (std::is_floating_point_v<T>) {
          typed.push_back(toDouble(token));
        } else {
          const std::int64_t value = toInt(token);
          const bool fits = std::is_signed_v<T>
                                ? value >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
                                      value <= static_cast<std::int64_t>(std::numeric_limits<T>::max())
                                : value >= 0 && static_cast<std::uint64_t>(value) <= std::numeric_limits<T>::max();
          if (!fits) fail("element " + token + " does not fit " + program::scalarTypeName(type));
          typed.push_back(static_cast<T>(value));
        }
      }
      return encodeValues(typed);
    };
    switch (type) {
      case ScalarType::kFloat32: return convert(float{});
      case ScalarType::kFloat64: return convert(double{});
      case ScalarType::kInt8: return convert(std::int8_t{});
      case ScalarType::kUInt8:
      case ScalarType::kBool: return convert(std::uint8_t{});
      case ScalarType::kInt16: return convert(std::int16_t{});
      case ScalarType::kInt32: return convert(std::int32_t{});
      case ScalarType::kInt64: return convert(std::int64_t{});
      default: fail("constants of dtype " + program::scalarTypeName(type) + " are not supported in text");
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t line_ = 1;
};

Json tensorArgument(const std::string& name) { return Json{{"as_tensor", Json{{"name", name}}}}; }

// The call signature torch.export gives the root module: positional user
// inputs (their names as the argument names) and one output, or a tuple of
// them; what ExportedProgram.module() needs to rebuild the module.
Json moduleCallGraph(const std::vector<std::string>& user_inputs, std::size_t outputs) {
  const Json leaf{{"type", nullptr}, {"context", nullptr}, {"children_spec", Json::array()}};
  auto tuple = [](Json children) {
    return Json{{"type", "builtins.tuple"}, {"context", "null"}, {"children_spec", std::move(children)}};
  };
  const Json args = tuple(Json(std::vector<Json>(user_inputs.size(), leaf)));
  const Json kwargs{{"type", "builtins.dict"}, {"context", "[]"}, {"children_spec", Json::array()}};
  const Json out = outputs == 1 ? leaf : tuple(Json(std::vector<Json>(outputs, leaf)));
  const Json signature{{"inputs", Json::array()},
                       {"outputs", Json::array()},
                       {"in_spec", dumpJson(Json::array({1, tuple(Json::array({args, kwargs}))}))},
                       {"out_spec", dumpJson(Json::array({1, out}))},
                       {"forward_arg_names", user_inputs}};
  return Json::array({Json{{"fqn", ""}, {"signature", signature}}});
}

}  // namespace

std::unique_ptr<Program> programFromText(std::string_view text, const std::optional<std::string>& fill_elided) {
  TextParser parser(text);
  Json inputs = Json::array(), input_specs = Json::array(), nodes = Json::array(), outputs = Json::array(),
       output_specs = Json::array();
  Json tensor_values = Json::object();
  std::vector<std::shared_ptr<Payload>> weights, constants;
  std::set<std::string, std::less<>> fqns[2];  // per section
  std::vector<std::string> user_inputs;
  Json verifiers = Json::array(), range_constraints = Json::object();
  std::set<std::string, std::less<>> defined;
  bool returned = false;

  auto define = [&](const std::string& value, const TextParser::TensorType& type) {
    if (!defined.insert(value).second) parser.fail("value '%" + value + "' is defined twice");
    tensor_values[value] = type.json();
  };

  while (!parser.atEnd()) {
    if (returned) parser.fail("nothing may follow 'return'");
    if (parser.peek() == '%' || parser.peek() == '(') {
      // %a[, %b ...] = target(name=arg, ...): type[, type ...] [@name]
      std::vector<std::string> results;
      if (parser.accept('(')) {
        parser.expect(')', "for a node without outputs");
      } else {
        do results.push_back(parser.valueName());
        while (parser.accept(','));
      }
      parser.expect('=', "after the node's outputs");
      const std::string target = parser.word();
      if (target.empty()) parser.fail("expected an op target, found " + parser.found());
      Json node_inputs = Json::array();
      parser.expect('(', "after the target");
      if (!parser.accept(')')) {
        int kind = 1;  // positional, until a `*`
        do {
          if (kind == 1 && parser.accept('*')) {
            kind = 2;
            parser.expect(',', "after '*'");
          }
          const std::string operand = parser.word();
          if (operand.empty()) parser.fail("expected an argument name, found " + parser.found());
          parser.expect('=', "after argument name '" + operand + "'");
          const Argument argument = parser.argument();
          for (const auto& reference :
               argument.refersToTensors() ? argument.tensorReferences() : std::vector<std::optional<std::string>>{}) {
            if (reference && defined.count(*reference) == 0) parser.fail("'%" + *reference + "' is not defined");
          }
          node_inputs.push_back(Json{{"name", operand}, {"arg", argument.toJson()}, {"kind", kind}});
        } while (parser.accept(','));
        parser.expect(')', "after the arguments");
      }
      Json node_outputs = Json::array();
      if (!results.empty()) {
        parser.expect(':', "before the output types");
        for (std::size_t i = 0; i < results.size(); ++i) {
          if (i > 0) parser.expect(',', "between output types");
          define(results[i], parser.tensorType());
          node_outputs.push_back(tensorArgument(results[i]));
        }
      }
      std::string node_name = results.empty() ? "" : results[0];
      if (parser.accept('@')) node_name = parser.word();
      if (node_name.empty()) parser.fail("a node without outputs needs @name");
      nodes.push_back(Json{{"target", std::string(kOpsPrefix) + target},
                           {"inputs", node_inputs},
                           {"outputs", node_outputs},
                           {"metadata", Json::object()},
                           {"is_hop_single_tensor_return", nullptr},
                           {"name", node_name}});
      continue;
    }
    const std::string keyword = parser.word();
    if (keyword == "return") {
      returned = true;
      if (parser.peek() == '%') {
        do {
          const std::string value = parser.valueName();
          if (defined.count(value) == 0) parser.fail("'%" + value + "' is not defined");
          outputs.push_back(tensorArgument(value));
          output_specs.push_back(Json{{"user_output", Json{{"arg", tensorArgument(value)}}}});
        } while (parser.accept(','));
      }
    } else if (keyword == "verifier") {
      verifiers.push_back(parser.word());
    } else if (keyword == "symbol") {
      const std::string symbol = parser.word();
      if (symbol.empty()) parser.fail("expected a symbol's name, found " + parser.found());
      parser.expect('=', "after the symbol");
      parser.expect('[', "before the symbol's range");
      const Json low = parser.optionalInteger();
      parser.expect(',', "between the bounds");
      const Json high = parser.optionalInteger();
      parser.expect(']', "after the symbol's range");
      range_constraints[symbol] = Json{{"min_val", low}, {"max_val", high}};
    } else if (keyword == "input") {
      const std::string value = parser.valueName();
      parser.expect(':', "before the input's type");
      define(value, parser.tensorType());
      inputs.push_back(tensorArgument(value));
      input_specs.push_back(Json{{"user_input", Json{{"arg", tensorArgument(value)}}}});
      user_inputs.push_back(value);
    } else if (keyword == "parameter" || keyword == "buffer" || keyword == "constant") {
      const std::string value = parser.valueName();
      parser.expect('=', "before the FQN");
      const std::string fqn = parser.stringLiteral();
      // A buffer outside the state_dict (register_buffer(persistent=False))
      // is saved with the constants.
      bool persistent = keyword == "buffer";
      if (persistent && parser.peek() != ':') {
        if (parser.word() != "nonpersistent") parser.fail("expected ':' or 'nonpersistent' after the FQN");
        persistent = false;
      }
      parser.expect(':', "before the type");
      const TextParser::TensorType type = parser.tensorType();
      const program::TensorMeta& meta = type.meta;
      for (const std::string& symbol : type.symbols) {
        if (!symbol.empty()) parser.fail("a constant cannot have symbolic sizes");
      }
      const std::string bytes = parser.encode(meta.dtype, parser.data(meta.numel(), value, fill_elided));
      define(value, type);
      inputs.push_back(tensorArgument(value));
      const Json arg{{"name", value}};
      const bool constant = keyword == "constant" || (keyword == "buffer" && !persistent);
      if (!fqns[constant].insert(fqn).second) parser.fail("FQN \"" + fqn + "\" is bound twice");
      auto payload = std::make_shared<Payload>();
      payload->section = constant ? PayloadSection::kConstants : PayloadSection::kWeights;
      payload->fqn = fqn;
      payload->meta.is_param = keyword == "parameter";
      payload->meta.tensor_meta = meta;
      payload->storage = std::make_shared<const Storage>(bytes);
      (constant ? constants : weights).push_back(std::move(payload));
      if (keyword == "parameter") {
        input_specs.push_back(Json{{"parameter", Json{{"arg", arg}, {"parameter_name", fqn}}}});
      } else if (keyword == "buffer") {
        input_specs.push_back(Json{{"buffer", Json{{"arg", arg}, {"buffer_name", fqn}, {"persistent", persistent}}}});
      } else {
        input_specs.push_back(Json{{"tensor_constant", Json{{"arg", arg}, {"tensor_constant_name", fqn}}}});
      }
    } else {
      parser.fail(keyword.empty() ? "expected a statement, found " + parser.found()
                                  : "unknown statement '" + keyword + "'");
    }
  }
  if (!returned) parser.fail("the graph has no 'return'");

  Json graph{{"inputs", inputs},
             {"outputs", outputs},
             {"nodes", nodes},
             {"tensor_values", tensor_values},
             {"sym_int_values", Json::object()},
             {"sym_bool_values", Json::object()},
             {"is_single_tensor_return", false},
             {"custom_obj_values", Json::object()},
             {"sym_float_values", Json::object()}};
  Json model{{"graph_module", Json{{"graph", graph},
                                   {"signature", Json{{"input_specs", input_specs}, {"output_specs", output_specs}}},
                                   {"module_call_graph", moduleCallGraph(user_inputs, outputs.size())},
                                   {"metadata", Json::object()},
                                   {"treespec_namedtuple_fields", Json::object()}}},
             {"opset_version", Json{{"aten", 10}}},
             {"range_constraints", range_constraints},
             {"schema_version", Json{{"major", program::kSchemaMajorVersion}, {"minor", program::kSchemaMinorVersion}}},
             {"verifiers", verifiers},
             {"torch_version", program::kTorchVersion},
             {"guards_code", Json::array()}};
  program::ExportedProgram exported =
      program::ExportedProgram::parse(JsonText::parse(dumpJson(model)), "the program of the text");
  return Program::fromMemory(std::move(exported), std::move(weights), std::move(constants));
}

}  // namespace qatfold::graph
