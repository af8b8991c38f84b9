// The fold report as JSON (`qatfold fold --json`, qatfold.FoldReport).
#include <algorithm>

#include "qatfold/passes/patterns.h"
#include "qatfold/report/fold_report.h"

namespace qatfold::report {

using passes::FoldedConv;
using passes::FoldReport;
using passes::PreparedBias;
using passes::SkippedBatchNorm;

namespace {

Json epsMismatchJson(const FoldedConv& c) {
  if (!c.eps_mismatch) return nullptr;
  const auto& e = *c.eps_mismatch;
  return Json{{"chain_eps", floatToJson(e.chain_eps)},
              {"batch_norm_eps", floatToJson(e.batch_norm_eps)},
              {"factor_min", floatToJson(e.factor_min)},
              {"factor_max", floatToJson(e.factor_max)},
              {"cause", e.dequantized_parameters ? "dequantized parameters" : "eps"},
              {"handling", e.in_weight_scales      ? "folded into the per-channel weight and bias scales"
                           : e.requantized_weights ? "the per-tensor weights re-quantized with it"
                                                   : "ignored: within the eps tolerance"},
              {"weight_error", e.requantized_weights ? floatToJson(e.requantized_weights->overall) : Json(nullptr)},
              {"channel_weight_error",
               e.requantized_weights ? floatToJson(e.requantized_weights->worst_channel) : Json(nullptr)}};
}

Json rangeJson(const numerics::AffineRange& r) {
  return Json{{"scale", floatToJson(r.scale)},
              {"zero_point", r.zero_point},
              {"range", Json::array({floatToJson(r.low()), floatToJson(r.high())})}};
}

Json widenedJson(const FoldedConv& c) { return c.widened_output ? rangeJson(*c.widened_output) : Json(nullptr); }

Json requantizedJson(const FoldedConv& c) {
  if (!c.requantized) return nullptr;
  const FoldedConv::Requantized& r = *c.requantized;
  const auto& e = r.weight_error;
  return Json{{"source", r.source},
              {"before", rangeJson(r.before)},
              {"after", rangeJson(r.after)},
              {"negated_channels", r.negated_channels},
              {"weight_error", e ? floatToJson(e->overall) : Json(nullptr)},
              {"channel_weight_error", e ? floatToJson(e->worst_channel) : Json(nullptr)},
              {"worst_weight_channel", e ? Json(e->channel) : Json(nullptr)},
              {"looked_through", r.looked_through}};
}

// The keys of a JSON object, in order.
Json keysOf(const Json& object) {
  Json keys = Json::array();
  for (const auto& [key, value] : object.items()) keys.push_back(key);
  return keys;
}

}  // namespace

Json foldReportJson(const FoldReport& report) {
  Json json = Json::object();
  json["chains_found"] = report.chainsFound();
  json["folded_count"] = report.folded.size();
  json["skipped_count"] = report.skipped.size();
  json["clamped_bias_elements"] = report.clampedTotal();
  json["risk_threshold"] = report.risk_threshold;
  json["flagged_count"] = report.flaggedCount();
  json["removed_nodes"] = report.removed_nodes;
  json["removed_constants"] = report.removed_constants;
  json["changed"] = report.changed;
  json["quantized_program"] = report.quantized_program;
  json["warnings"] = report.warnings;
  Json strict_json = Json::array();
  for (const SkippedBatchNorm* s : report.strictFailures()) {
    strict_json.push_back(Json{
        {"batch_norm", s->batch_norm}, {"module_path", s->module_path}, {"code", s->code()}, {"reason", s->reason()}});
  }
  json["strict_failures"] = std::move(strict_json);
  json["strict_failed"] = report.strictFailed();
  json["bias_preparation"] = Json{{"policy", report.bias_preparation.policy},
                                  {"requested", report.bias_preparation.requested},
                                  {"reason", report.bias_preparation.reason}};
  Json prepared_json = Json::array();
  for (const PreparedBias& p : report.prepared_biases)
    prepared_json.push_back(Json{{"conv", p.conv}, {"action", p.action}});
  json["prepared_biases"] = std::move(prepared_json);
  Json folded_json = Json::array();
  for (const FoldedConv& c : report.folded) {
    const Json range = !c.output_quantized
                           ? Json(nullptr)
                           : Json::array({floatToJson(c.risk.range_low), floatToJson(c.risk.range_high)});
    folded_json.push_back(
        Json{{"conv", c.conv},
             {"conv_target", c.conv_target},
             {"kind", c.kind()},
             {"module_path", c.module_path},
             {"batch_norm", c.batch_norm},
             {"folded_by", c.folded_by},
             {"channels", c.channels},
             {"bias_dtype", c.float_bias ? "float32" : "int32"},
             {"scaled_weights", c.scaled_weights},
             {"per_channel_bias", c.per_channel_bias},
             {"copied_bias", c.copied_bias},
             {"clamped_bias_elements", c.clamped_bias_elements},
             {"max_abs_shift", floatToJson(c.risk.max_abs_shift)},
             {"output_range", range},
             {"relative_shift", !c.output_quantized ? Json(nullptr) : floatToJson(c.risk.relative_shift)},
             {"flagged", c.flagged},
             {"widened_output", widenedJson(c)},
             {"eps_mismatch", epsMismatchJson(c)},
             {"requantized", requantizedJson(c)}});
  }
  json["folded"] = std::move(folded_json);
  Json skipped_json = Json::array();
  for (const SkippedBatchNorm& s : report.skipped) {
    const std::string_view option = s.refusal.info().option;
    skipped_json.push_back(Json{
        {"batch_norm", s.batch_norm},
        {"module_path", s.module_path},
        {"qat_chain", s.qatChain()},
        {"code", s.code()},
        {"reason", s.reason()},
        {"option", option.empty() ? Json(nullptr) : Json(option)},
        {"option_value", s.refusal.info().option_value.empty() ? Json(nullptr) : Json(s.refusal.info().option_value)}});
  }
  json["skipped"] = std::move(skipped_json);
  return json;
}

Json foldReportFields() {
  // A report with one of everything: every key is always written (null
  // where a value does not apply), so its keys are the field lists.
  FoldReport sample;
  sample.quantized_program = true;
  sample.folded.emplace_back();
  sample.prepared_biases.push_back({});
  sample.skipped.push_back({"", "", passes::Refusal{passes::RefusalCode::kTrainingMode, {}}});
  const Json json = foldReportJson(sample);
  return Json{{"FoldReport", keysOf(json)},
              {"FoldedConv", keysOf(json["folded"][0])},
              {"SkippedBatchNorm", keysOf(json["skipped"][0])},
              {"PreparedBias", keysOf(json["prepared_biases"][0])},
              {"strict_failures", keysOf(json["strict_failures"][0])},
              {"bias_preparation", keysOf(json["bias_preparation"])}};
}

}  // namespace qatfold::report
