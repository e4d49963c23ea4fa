// The public header as C++: every declaration is noexcept and extern "C".
#include "tickwheel.h"

#include <type_traits>

static_assert(noexcept(tw_wheel_advance(nullptr, 0)), "the C API is noexcept from C++");
static_assert(noexcept(tw_strerror(0)), "the C API is noexcept from C++");
static_assert(std::is_same<tw_timer, uint64_t>::value, "handles are 64-bit");

int main()
{
    tw_wheel *w = nullptr;
    if (tw_wheel_new(nullptr, 0, &w) != 0)
        return 1;
    tw_wheel_free(w);
    return 0;
}
