// The Sluice C++ SDK: write plugins as plain C++ classes on top of the C ABI in abi.h.
// Header-only; depends on the C++20 standard library only.
#ifndef SLUICE_SDK_HPP
#define SLUICE_SDK_HPP

#include "sluice/abi.h"
#include "sluice/sdk/config.hpp"
#include "sluice/sdk/json.hpp"
#include "sluice/sdk/message.hpp"
#include "sluice/sdk/metrics.hpp"
#include "sluice/sdk/plugin.hpp"
#include "sluice/sdk/template.hpp"
#include "sluice/sdk/text.hpp"

#endif  // SLUICE_SDK_HPP
