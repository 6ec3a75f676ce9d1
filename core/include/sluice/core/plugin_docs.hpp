// A plugin's documentation, generated from its config spec: what `sluice plugins describe`
// prints and what each plugin's README.md is generated from.
#pragma once

#include <string>

#include "sluice/core/plugin_registry.hpp"

namespace sluice {

enum class DocFormat { text, markdown, json };

std::string describe_plugin(const PluginInfo& plugin, DocFormat format);
/// The route options page (Markdown), from the route option tables.
std::string describe_route_options();
/// "string", "integer", ..., with the enum values for enums.
std::string field_type_label(const sluice_field_spec& f);

}  // namespace sluice
