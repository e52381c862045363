// media/devices.js — lists the microphones and cameras the user can choose from. Browsers only
// give device labels once the page may use a device, so the caller may ask for permission first.

/**
 * @typedef {{deviceId: string, label: string}} Device
 */

/**
 * @param {{askPermission?: boolean}} [options] with askPermission, open (and at once release)
 *        the default microphone and camera so that the labels are known; a refusal or a missing
 *        device is not an error here, the lists are simply shorter or unlabelled
 * @returns {Promise<{microphones: Device[], cameras: Device[]}>}
 */
export async function listDevices({askPermission = false} = {}) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) {
    return {microphones: [], cameras: []};
  }
  if (askPermission) {
    for (const kind of ['audio', 'video']) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({[kind]: true});
        for (const track of stream.getTracks()) track.stop();
      } catch {
        // Refused or absent: the room says so when the user tries to use it.
      }
    }
  }
  const devices = await navigator.mediaDevices.enumerateDevices();
  /** @param {MediaDeviceKind} kind @param {string} noun */
  const pick = (kind, noun) => devices
    .filter((device) => device.kind === kind && device.deviceId)
    .map((device, index) => ({
      deviceId: device.deviceId,
      label: device.label || `${noun} ${index + 1}`,
    }));
  return {microphones: pick('audioinput', 'Microphone'), cameras: pick('videoinput', 'Camera')};
}
