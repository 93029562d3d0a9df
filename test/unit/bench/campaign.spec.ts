// bench/campaign.ts: the campaign benchmark's rounds and their order (no timing here).
import { campaignOrder, campaignRounds } from '../../../bench/campaign';

describe('campaign bench rounds', () => {
  it('alternates which of the bound pair runs first, then runs one unbound pair', () => {
    expect(campaignOrder(3, 2)).toEqual([
      [1, 1, true],
      [1, 2, true],
      [2, 2, true],
      [2, 1, true],
      [3, 1, true],
      [3, 2, true],
      [4, 1, false],
      [4, 2, false],
    ]);
  });

  it('every round has one run of each job count', () => {
    const order = campaignOrder(5, 4);
    for (let k = 1; k <= 6; k++)
      expect(
        order
          .filter(([r]) => r === k)
          .map(([, j]) => j)
          .sort(),
      ).toEqual([1, 4]);
  });

  it('reads PINLAB_CAMPAIGN_ROUNDS, default 3, and names a bad value', () => {
    expect(campaignRounds({})).toBe(3);
    expect(campaignRounds({ PINLAB_CAMPAIGN_ROUNDS: '' })).toBe(3);
    expect(campaignRounds({ PINLAB_CAMPAIGN_ROUNDS: '5' })).toBe(5);
    for (const v of ['0', '21', '2.5', 'three', '-1'])
      expect(() => campaignRounds({ PINLAB_CAMPAIGN_ROUNDS: v })).toThrow(
        `PINLAB_CAMPAIGN_ROUNDS=${v}: not a whole number`,
      );
  });
});
