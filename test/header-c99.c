/* The public header alone, as strict C99: built with -pedantic -Werror. */
#include "tickwheel.h"

int main(void)
{
    tw_wheel_config config;
    tw_wheel_config_init(&config);
    return config.struct_size == sizeof(config) && tw_err_name(TW_EINVAL) != 0 ? 0 : 1;
}
