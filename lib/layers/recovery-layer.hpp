/*
 * The reliability layer as a connection layer: the tw_layer_ops that
 * tw_conn_add_recovery gives a connection, over the core of a tw_recovery,
 * and the hand-over of its notify callback, by which the connection hears
 * that the loss-detection deadline moved.
 *
 * The ops keep the rules of the C boundary (layers/recovery.hpp): from
 * inside the recovery's notify callback a check, a take of frames or a
 * change of the notify callback does nothing, and a free asked for there
 * happens when the call that ran the callback returns.
 *
 * Uses: layers/recovery.hpp (the core and its handle).  lib/conn calls it;
 * it calls nothing of lib/conn.
 */
#ifndef TW_LAYERS_RECOVERY_LAYER_HPP
#define TW_LAYERS_RECOVERY_LAYER_HPP

#include "tickwheel.h"

namespace tw {

/* Pure: a large batch may check it on the loop's worker thread. */
extern const tw_layer_ops kRecoveryLayer;

/* Points recovery's notify callback at fn(recovery, userdata), or at
 * nothing with fn NULL (the connection gives it back when freed). */
void recovery_layer_notify(tw_recovery *recovery, tw_recovery_notify_fn *fn, void *userdata);
/* The notify callback recovery has now, NULL when none. */
tw_recovery_notify_fn *recovery_layer_notified(const tw_recovery *recovery);

} // namespace tw

#endif
