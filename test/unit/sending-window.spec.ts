import { SendingWindows } from '../../lib/delivery/sending-window.js';
import { WebhookAttemptOutcome } from '../../lib/model/webhook-delivery-attempt.entity.js';

const { SUCCEEDED, HTTP_ERROR, TIMEOUT, NETWORK_ERROR, REFUSED } = WebhookAttemptOutcome;

function after(windows: SendingWindows, urlId: number, ...outcomes: WebhookAttemptOutcome[]): number {
  outcomes.forEach((outcome) => windows.afterAttempt(urlId, outcome));
  return windows.of(urlId);
}

describe('SendingWindows', () => {
  it('lets a URL that has not answered yet have one request in flight', () => {
    expect(new SendingWindows(8).of(1)).toBe(1);
  });

  it('adds one request for every answer, whatever its status, up to the cap', () => {
    const windows = new SendingWindows(4);
    expect(after(windows, 1, SUCCEEDED)).toBe(2);
    expect(after(windows, 1, HTTP_ERROR)).toBe(3);
    expect(after(windows, 1, SUCCEEDED, SUCCEEDED, SUCCEEDED)).toBe(4);
    expect(windows.of(2)).toBe(1);
  });

  it('goes back to one request after a timeout, and grows again with answers', () => {
    const windows = new SendingWindows(4);
    after(windows, 1, SUCCEEDED, SUCCEEDED, SUCCEEDED);
    expect(after(windows, 1, TIMEOUT)).toBe(1);
    expect(after(windows, 1, SUCCEEDED)).toBe(2);
  });

  it('leaves the window as it is after a network error or a refused address', () => {
    const windows = new SendingWindows(4);
    after(windows, 1, SUCCEEDED);
    expect(after(windows, 1, NETWORK_ERROR, REFUSED)).toBe(2);
    expect(after(windows, 2, NETWORK_ERROR)).toBe(1);
  });

  it('keeps to a cap of one', () => {
    expect(after(new SendingWindows(1), 1, SUCCEEDED, SUCCEEDED)).toBe(1);
  });

  it('forgets the URLs whose windows grew longest ago once ten thousand are remembered', () => {
    const windows = new SendingWindows(4);
    for (let urlId = 1; urlId <= 10_001; urlId++) windows.afterAttempt(urlId, SUCCEEDED);
    expect(windows.of(1)).toBe(1);
    expect(windows.of(2)).toBe(2);
    expect(windows.of(10_001)).toBe(2);
  });
});
