// The firmware version has one home: the sketch, the simulator and every payload read it here.
#pragma once

namespace sluice::firmware {

inline constexpr char kFirmwareVersion[] = "1.0.0";

}  // namespace sluice::firmware
