#include "core/clock.h"

namespace berth::core {

SystemClock& SystemClock::Get() {
  static SystemClock* clock = new SystemClock();
  return *clock;
}

}  // namespace berth::core
